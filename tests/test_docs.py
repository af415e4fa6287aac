"""The README and the docstrings tell a newcomer the truth: their code runs and prints what they show."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest

import memostore

from helpers import REPO_ROOT, require_dot

README = (REPO_ROOT / "README.md").read_text()
INTERNAL_TERMS = re.compile(r"\bseed \d|\bissues? \d|#\d+\b|\bW[1-7]\b|DESIGN\.md|for mandala's users", re.I)


def test_readme_python_blocks_run_and_print_what_the_readme_shows(tmp_path):
    pytest.importorskip("sklearn")
    require_dot()  # the README draws the frame to an SVG file
    blocks = README.split("```python\n")[1:]  # ```py blocks are excerpts, not run
    assert blocks, "README has no python example"
    script = tmp_path / "readme.py"  # a file, as a user saves it: op versions come from its source
    script.write_text("\n".join(block.split("```")[0] for block in blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [re.sub(r"hid=[0-9a-f]+\.\.\.", "hid=...", line) for line in result.stdout.splitlines()]
    assert lines[:3] == ["Ref(0.76, hid=...)", "Ref(hid=..., in_memory=False)", "0.76"]
    shown_repr = [line[2:] for line in README.splitlines() if line.startswith("# ComputationFrame") or
                  line.startswith("#     ") or line.startswith("# Computational")]
    assert lines[3:] == shown_repr
    drawn = (tmp_path / "pipeline.svg").read_text()
    pictured = (REPO_ROOT / "tutorials" / "images" / "quickstart.svg").read_text()
    assert drawing_labels(drawn) == drawing_labels(pictured), "redraw it: python tutorials/images/make_images.py"


def drawing_labels(svg: str) -> list[str]:
    """The texts of a Graphviz SVG (node names, counts, edge labels), sorted: what the picture says."""
    return sorted(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


def test_readme_api_reference_lists_every_public_name_once():
    section = README.split("## API reference")[1].split("\n## ")[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert sorted(listed) == sorted(set(listed))
    public = set(memostore.__all__)
    assert public - {"Storage"} <= set(listed) <= public | {"Storage"}
    assert set(listed) == public


def test_readme_picture_and_tutorials_it_names_exist():
    for target in re.findall(r"\]\(((?:tutorials|benchmarks)/[^)]+)\)", README):
        assert (REPO_ROOT / target).exists(), target
    for name in re.findall(r"`(\d\d_\w+\.py)`", README):
        assert (REPO_ROOT / "tutorials" / name).exists(), name
    assert (REPO_ROOT / "tutorials" / "images" / "quickstart.svg").read_text().lstrip().startswith("<?xml")


def test_readme_contents_links_point_at_its_sections():
    anchors = {re.sub(r"[^\w\- ]", "", title).strip().lower().replace(" ", "-")
               for title in re.findall(r"^#+ (.+)$", README, flags=re.M)}
    contents = README.split("**Contents:**")[1].split("\n")[0]
    for link in re.findall(r"\(#([\w-]+)\)", contents):
        assert link in anchors, link


@pytest.mark.parametrize("path", ["README.md", *sorted(p.name for p in (REPO_ROOT / "tutorials").glob("*.py"))])
def test_no_internal_terms_for_users(path):
    text = (REPO_ROOT / path).read_text() if path == "README.md" else (REPO_ROOT / "tutorials" / path).read_text()
    assert not INTERNAL_TERMS.findall(text)
    if path == "README.md":
        assert not re.search(r"\bseed\b", text, flags=re.I)


def test_storage_docstring_describes_every_argument_with_its_default():
    doc = inspect.getdoc(memostore.Storage) or ""
    for name, parameter in inspect.signature(memostore.Storage).parameters.items():
        assert f"``{name}``" in doc, name
        if parameter.default is not inspect.Parameter.empty:
            assert f"default {parameter.default!r}" in doc or f"default ``{parameter.default!r}``" in doc, name
