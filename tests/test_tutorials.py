"""Each tutorial runs end to end, as a user would run it: twice as a script, then as a notebook.

The tutorials keep their store, so the second run and the notebook compute
nothing and say so. Each is copied under ``tmp_path`` and run from another
working directory without ``MEMOSTORE_TUTORIAL_DIR``, so its store lands in
``output/`` beside the copy, as it does for a user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT

TUTORIALS = REPO_ROOT / "tutorials"
NOTHING_COMPUTED = "This run computed nothing: every result was loaded from the store of an earlier run"


def run_script(name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a copy of the tutorial as a script from an unrelated working directory (at its small size)."""
    pytest.importorskip("sklearn")
    script = tmp_path / "tutorials" / name
    script.parent.mkdir(exist_ok=True)
    shutil.copy(TUTORIALS / name, script)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "MEMOSTORE_TUTORIAL_DIR"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MEMOSTORE_TUTORIAL_SMALL"] = "1"
    result = subprocess.run([sys.executable, str(script)], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Convert the tutorial to a notebook beside its copy and execute it there; returns every output."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.delenv("MEMOSTORE_TUTORIAL_DIR", raising=False)
    monkeypatch.setenv("MEMOSTORE_TUTORIAL_SMALL", "1")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    folder = tmp_path / "tutorials"
    notebook = jupytext.read(TUTORIALS / name)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()
    jupytext.write(notebook, folder / name.replace(".py", ".ipynb"))
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def stdout_of(outputs: list[dict]) -> str:
    return "".join(output.get("text", "") for output in outputs
                   if output["output_type"] == "stream" and output["name"] == "stdout")


def stderr_of(outputs: list[dict]) -> str:
    return "".join(output.get("text", "") for output in outputs
                   if output["output_type"] == "stream" and output["name"] == "stderr")


def run_three_times(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> tuple[subprocess.CompletedProcess[str], str, list[dict]]:
    """The first script run, the second's stdout and the notebook's outputs; the last two computed nothing."""
    first = run_script(name, tmp_path)
    assert NOTHING_COMPUTED not in first.stdout
    second = run_script(name, tmp_path).stdout
    assert NOTHING_COMPUTED in second
    outputs = run_notebook(name, tmp_path, monkeypatch)
    assert NOTHING_COMPUTED in stdout_of(outputs)
    assert not [output for output in outputs if output["output_type"] == "error"]
    assert "IProgress not found" not in stderr_of(outputs)
    return first, second, outputs


def test_quickstart_computes_each_call_once_and_reuses_after_growing(tmp_path, monkeypatch):
    first_run, again, outputs = run_three_times("00_quickstart.py", tmp_path, monkeypatch)
    shown = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("ComputationFrame" in markup and "eval_model" in markup for markup in shown)
    out = first_run.stdout
    first, rest = out.split("The same code again:")
    assert first.count("computing") == 3
    second, grown = rest.split("Running with 1 trees:")
    assert "computing" not in second and "in_memory=False" in second
    one_tree, more = grown.split("Running with 10 trees:")
    assert "computing" not in one_tree
    assert more.count("computing train_model") == 2 and more.count("computing eval_model") == 2
    assert "calls=7" in out and "This run computed 7 calls" in out
    assert "computing" not in again and "calls=7" in again
    assert (tmp_path / "tutorials" / "output" / "quickstart.db").exists()


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


def test_random_forest_prints_the_tables_and_deletes_in_a_copy(tmp_path, monkeypatch):
    pytest.importorskip("tabulate")
    first_run, again, _ = run_three_times("01_random_forest.py", tmp_path, monkeypatch)
    out = first_run.stdout
    assert out.count("Generating dataset...") == 1
    assert out.count("Training model...") == 3 + 4
    tables = markdown_tables(out)
    assert [len(t) for t in tables] == [3, 3, 7, 4]
    assert sum(row[1] == "<NA>" for row in tables[0]) == 1  # n_estimators (ints) before the op grew
    seventh = tables[2]
    assert sum(row[-1] == "nan" for row in seventh) == 4  # four models never evaluated
    assert sum(row[3] == "<NA>" for row in seventh) == 3  # max_depth (ints) missing before it existed
    assert "Dropped 3 calls." in out and "Dropped 3 calls." in again
    assert sum(row[-1] == "nan" for row in tables[3]) == 1
    assert len(markdown_tables(again)[-1]) == 4  # a re-run's frames hold every call from the start
    assert "Training model..." not in again
    if shutil.which("dot") is None:  # drawing without dot: the next test; CI has dot
        assert out.count("No drawing: Graphviz's dot program is not on PATH") == 3
        return
    output = tmp_path / "tutorials" / "output"
    for drawing in ("expand_back.svg", "expand_forward.svg", "random_forest.svg"):
        assert (output / drawing).read_bytes().startswith(b"<?xml")


def test_random_forest_without_dot_explains_and_goes_on(tmp_path):
    pytest.importorskip("tabulate")
    pytest.importorskip("sklearn")
    shutil.copy(TUTORIALS / "01_random_forest.py", tmp_path / "01_random_forest.py")
    (tmp_path / "bin").mkdir()  # an empty PATH: the tutorial runs by full path, and finds no dot
    env = {**os.environ, "PATH": str(tmp_path / "bin"), "MEMOSTORE_TUTORIAL_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, str(tmp_path / "01_random_forest.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("No drawing: Graphviz's dot program is not on PATH") == 3
    assert "apt-get install graphviz" in result.stdout


def test_many_models_runs_in_parallel_records_failures_and_reruns_nothing(tmp_path, monkeypatch):
    for package in ("palmerpenguins", "seaborn"):
        pytest.importorskip(package)
    first_run, again, outputs = run_three_times("02_many_models.py", tmp_path, monkeypatch)
    assert "fit_gmm: 100%" in first_run.stderr  # the progress bar of the fits
    out = first_run.stdout
    first = next(line for line in out.splitlines() if line.startswith("First pass:"))
    assert "0 loaded" in first and int(first.split()[2]) > 50
    assert "Second pass: 0 calls computed" in out
    assert "First pass: 0 calls computed" in again and "Second pass: 0 calls computed" in again
    assert "4 failed fits" in out and "builtins.ValueError" in out
    assert ("fit@output_0 = fit_gmm(covariance_type=covariance_type, n_components=n_components, n_init=n_init, "
            "train=train)") in out
    assert (tmp_path / "tutorials" / "output" / "cv_ars.png").read_bytes().startswith(b"\x89PNG")


def test_code_changes_recompute_exactly_what_changed(tmp_path, monkeypatch):
    first_run, again, _ = run_three_times("03_code_changes.py", tmp_path, monkeypatch)
    out = first_run.stdout
    computed = {line.split(": computed ")[0]: line.split(": computed ")[1]
                for line in out.splitlines() if ": computed " in line}
    assert computed == {
        "The original code": "gross(10), gross(20), sale(10, 10), sale(20, 10)",
        "After a cosmetic change": "nothing",
        "After VAT = 0.25": "gross(10), gross(20)",
        "After editing discount()": "sale(10, 10), sale(20, 10)",
        "After a compatible refactor": "nothing",
    }
    assert "-VAT = 0.2\n+VAT = 0.25" in out
    assert "gross: miss" in out and "the code changed" in out
    assert "Carried 2 calls of gross over" in out
    # gross's calls of the version marked compatible were moved to the current one: not stale.
    assert "4 calls of old versions" in out and "4 calls of old versions" in again
    assert "a value passed in" in out
    rerun = {line.split(": computed ")[1] for line in again.splitlines() if ": computed " in line}
    assert rerun == {"nothing"}  # every version's results are still stored


def test_reports_write_one_report_per_run_and_a_comparison_from_the_store(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    first_run, again, _ = run_three_times("06_reports.py", tmp_path, monkeypatch)
    out = first_run.stdout
    assert "This run computed 22 calls" in out  # 2 noise levels x (sample, split, 3 x (fit, error, figure))
    assert "computed 0, found stored 11" in again
    output = tmp_path / "tutorials" / "output"
    for name in ("report_noise_0.1.html", "report_noise_0.5.html", "report_comparison.html"):
        page = (output / name).read_text(encoding="utf-8")
        assert "<svg" in page and "data:image/png;base64," in page and "<script" not in page
    comparison = (output / "report_comparison.html").read_text(encoding="utf-8")
    assert "Every noise level compared" in comparison and comparison.count("data:image/png;base64,") == 6
    # A re-run's report says the results were found stored, and which run computed them.
    rerun_report = (output / "report_noise_0.1.html").read_text(encoding="utf-8")
    assert "(noise=0.1) on" in rerun_report and "found stored" in rerun_report
    assert "best degree per noise level: {0.1: 3, 0.5: 3}" in out


def test_model_tournament_ranks_from_the_store_and_a_new_grid_point_computes_only_its_folds(tmp_path, monkeypatch):
    first_run, again, _ = run_three_times("04_model_tournament.py", tmp_path, monkeypatch)
    out = first_run.stdout
    assert "Tournament: 25 folds computed, 0 loaded" in out
    assert "With one more grid point: 5 folds computed, 25 loaded" in out
    assert "Tournament: 0 folds computed, 25 loaded" in again
    assert "With one more grid point: 0 folds computed, 30 loaded" in again
    leaderboard = out.split("grid_point")[1].split("Winner:")[0]
    assert {"logistic", "forest", "boosting"} <= set(leaderboard.split())
    winner = next(line for line in out.splitlines() if line.startswith("Winner:"))
    assert winner == next(line for line in again.splitlines() if line.startswith("Winner:"))
    assert float(winner.rsplit(" ", 1)[1]) > 0.9


def test_dataflow_keeps_both_branches_and_predicts_what_a_helper_edit_recomputes(tmp_path, monkeypatch):
    first_run, again, _ = run_three_times("05_dataflow.py", tmp_path, monkeypatch)
    out = first_run.stdout
    assert "Computed 14 calls for 4 configurations" in out
    assert "Stale calls of the smoothers: 0" in out
    assert "smoothed@output_0 = smooth_ewm(jumps=jumps, window=window)" in out
    assert "smoothed@output_0 = smooth_rolling(jumps=jumps, window=window_1)" in out
    table = out.split("smoother  window  accuracy")[1].split("Best configuration")[0].split()
    assert table.count("ewm") == 2 and table.count("rolling") == 2  # each row kept its own branch
    lineage = out.split("Best configuration")[1].split("Stale after the edit")[0]
    assert "= raw_tracks@" in lineage and "n_tracks" in lineage and "(a value passed in)" in lineage
    assert "Stale after the edit: 1 call of location_jump" in out and "Stored calls computed from it: 12" in out
    assert "After the edit: computed 13 calls" in out  # the stale call and the 12 computed from it
    assert "After the edit: computed 0 calls" in again
