"""What a block start costs with deps_path: every op versioned with the helpers it reaches.

A package of HELPERS helpers and OPS ops (each op reaching DEPTH helpers, each
helper the next) is written to a temporary directory; the first block reads
and checks every source, later blocks compute versions again from what was read.
Prints one JSON line per measurement (CPU seconds: ``--cpu``, the default).

    python benchmarks/bench_block_start.py
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

HELPERS, OPS, DEPTH, BLOCKS = 200, 100, 10, 20


def write_package(root: Path) -> None:
    lines = ["SCALE = 3\n"]
    for i in range(HELPERS):
        after = f"h{i + 1}(x) + " if i + 1 < HELPERS and (i + 1) % DEPTH else ""
        lines.append(f"def h{i}(x):\n    y = x * SCALE\n    return {after}y + {i}\n")
    (root / "bench_helpers.py").write_text("\n\n".join(lines))
    ops = ["from memostore import op\nimport bench_helpers\n"]
    for i in range(OPS):
        ops.append(f"@op\ndef op{i}(x):\n    return bench_helpers.h{(i * DEPTH) % HELPERS}(x)\n")
    (root / "bench_ops.py").write_text("\n\n".join(ops))


def main() -> None:
    from memostore import Storage

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_package(root)
        sys.path.insert(0, directory)
        ops_module = importlib.import_module("bench_ops")
        ops = [getattr(ops_module, f"op{i}") for i in range(OPS)]
        storage = Storage(db_path=root / "bench.db", deps_path=directory)
        for name, blocks in (("first block", 1), ("later blocks", BLOCKS)):
            start = time.process_time()
            for _ in range(blocks):
                with storage:
                    for op_ in ops:
                        storage.version_of(op_)
            seconds = (time.process_time() - start) / blocks
            print(json.dumps({"bench": "block_start", "case": name, "ops": OPS, "helpers_per_op": DEPTH,
                              "cpu_ms_per_block": round(seconds * 1000, 2)}))


if __name__ == "__main__":
    main()
