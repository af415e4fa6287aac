"""Redraw quickstart.svg, the README's picture: the README quickstart's frame as memostore draws it.

    python tutorials/images/make_images.py

It runs the README's first two Python examples in a temporary folder (they
write ``pipeline.svg``) and copies the drawing here. Needs Graphviz's dot.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent.parent / "README.md"


def main() -> None:
    blocks = README.read_text().split("```python\n")[1:3]
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "quickstart.py"
        script.write_text("\n".join(block.split("```")[0] for block in blocks))
        subprocess.run([sys.executable, str(script)], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        shutil.copy(Path(folder) / "pipeline.svg", HERE / "quickstart.svg")
    print(f"wrote {HERE / 'quickstart.svg'}")


if __name__ == "__main__":
    main()
