"""Each tutorial runs end to end, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

TUTORIALS = REPO_ROOT / "tutorials"


def run_tutorial(name: str, tmp_path) -> str:
    pytest.importorskip("sklearn")
    env = {**os.environ, "MEMOSTORE_TUTORIAL_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(TUTORIALS / name)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_computes_each_call_once_and_reuses_after_growing(tmp_path):
    out = run_tutorial("00_quickstart.py", tmp_path)
    first, rest = out.split("Second run, same code:")
    assert first.count("computing") == 3
    second, grown = rest.split("Running with 1 trees:")
    assert "computing" not in second and "in_memory=False" in second
    one_tree, more = grown.split("Running with 10 trees:")
    assert "computing" not in one_tree
    assert more.count("computing train_model") == 2 and more.count("computing eval_model") == 2
    assert "calls=7" in out
    assert (tmp_path / "quickstart.db").exists()


def test_readme_quickstart_runs(tmp_path):
    pytest.importorskip("sklearn")
    text = (REPO_ROOT / "README.md").read_text()
    blocks = text.split("```python\n")[1:]  # ```py blocks are excerpts, not run
    assert blocks, "README has no python example"
    code = "\n".join(block.split("```")[0] for block in blocks)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["Ref(0.76, hid=70e...)", "Ref(hid=70e..., in_memory=False)", "0.76"]
    shown_repr = [line[2:] for line in text.splitlines() if line.startswith("# ComputationFrame") or
                  line.startswith("#     ") or line.startswith("# Computational")]
    assert lines[3:] == shown_repr
    assert (tmp_path / "pipeline.svg").exists()


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The markdown tables printed in ``text``, as rows of cells (header and rule dropped)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def test_random_forest_reproduces_the_seed_tables(tmp_path):
    pytest.importorskip("tabulate")
    out = run_tutorial("01_random_forest.py", tmp_path)
    assert out.count("Generating dataset...") == 1
    assert out.count("Training model...") == 3 + 4
    tables = markdown_tables(out)
    assert [len(t) for t in tables] == [3, 3, 7, 4]
    assert sum(row[1] == "nan" for row in tables[0]) == 1  # n_estimators before the op grew
    seventh = tables[2]
    assert sum(row[-1] == "nan" for row in seventh) == 4  # four models never evaluated
    assert sum(row[3] == "nan" for row in seventh) == 3  # max_depth missing before it existed
    assert "Dropped 3 calls." in out
    assert sum(row[-1] == "nan" for row in tables[3]) == 1
    for drawing in ("expand_back.svg", "expand_forward.svg", "random_forest.svg"):
        assert (tmp_path / drawing).read_bytes().startswith(b"<?xml")


def test_many_models_runs_in_parallel_records_failures_and_reruns_nothing(tmp_path):
    for package in ("palmerpenguins", "seaborn"):
        pytest.importorskip(package)
    out = run_tutorial("02_many_models.py", tmp_path)
    first = next(line for line in out.splitlines() if line.startswith("First run:"))
    assert "0 loaded" in first and int(first.split()[2]) > 100
    assert "Second run: 0 calls computed" in out
    assert "4 failed fits" in out and "builtins.ValueError" in out
    assert "fit@output_0 = fit_gmm(covariance_type=covariance_type, n_components=n_components, train=train)" in out
    assert (tmp_path / "cv_ars.png").read_bytes().startswith(b"\x89PNG")


def test_code_changes_recompute_exactly_what_changed(tmp_path):
    out = run_tutorial("03_code_changes.py", tmp_path)
    computed = {line.split(": computed ")[0]: line.split(": computed ")[1]
                for line in out.splitlines() if ": computed " in line}
    assert computed == {
        "First run": "gross(10), gross(20), sale(10, 10), sale(20, 10)",
        "After a cosmetic change": "nothing",
        "After VAT = 0.25": "gross(10), gross(20)",
        "After editing discount()": "sale(10, 10), sale(20, 10)",
        "After a compatible refactor": "nothing",
    }
    assert "-VAT = 0.2\n+VAT = 0.25" in out
    assert "gross: miss" in out and "the code changed" in out
    assert "Carried 2 calls of gross over" in out
    assert "6 calls of old versions" in out
    assert "a value passed in" in out
