"""The memostore command's runs, report and drop --run, run for real against SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memostore import Storage, op

from helpers import REPO_ROOT


def memostore_command(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m memostore ARGS`` in a fresh process, away from this module's code."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "memostore", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT.parent, timeout=120)


@op
def square(x):
    return x * x


@op
def plus_one(x):
    return x + 1


def build(storage: Storage) -> None:
    with storage.run("first", tags={"size": "2"}):
        for i in range(2):
            plus_one(square(i))
    with storage.run("second", tags={"size": "3"}):
        for i in range(3):
            plus_one(square(i))
    storage.close()


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        location = str(tmp_path / "runs.db")
        build(Storage(db_path=location))
    else:
        location = request.getfixturevalue("postgres_url")
        build(Storage(db_url=location))
    return location


def test_runs_lists_each_run_with_its_counts(store):
    listed = memostore_command("runs", store, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["label"], r["tags"], r["computed"], r["hits"]) for r in rows] == [
        ("first", {"size": "2"}, 4, 0), ("second", {"size": "3"}, 2, 4)]
    table = memostore_command("runs", store, "--label", "second")
    assert table.returncode == 0 and "size=3" in table.stdout and "first" not in table.stdout


def test_report_writes_one_html_file_per_run_or_for_several(store, tmp_path):
    one = memostore_command("report", store, "--run", "first", "-o", str(tmp_path / "first.html"))
    assert one.returncode == 0, one.stderr
    page = (tmp_path / "first.html").read_text(encoding="utf-8")
    assert "Run first" in page and "<svg" in page and "size=2" in page
    both = memostore_command("report", store, "--run", "1", "--run", "second", "-o", str(tmp_path / "both.html"))
    assert both.returncode == 0 and "Runs first, second" in (tmp_path / "both.html").read_text(encoding="utf-8")
    by_op = memostore_command("report", store, "--op", "plus_one", "-o", str(tmp_path / "op.html"))
    assert by_op.returncode == 0 and "Calls of plus_one" in (tmp_path / "op.html").read_text(encoding="utf-8")
    unknown = memostore_command("report", store, "--run", "nope", "-o", str(tmp_path / "x.html"))
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr and not (tmp_path / "x.html").exists()
    nested = memostore_command("report", store, "--run", "first", "-o", str(tmp_path / "new" / "first.html"))
    assert nested.returncode == 0 and (tmp_path / "new" / "first.html").is_file()  # its folder is created
    blocked = memostore_command("report", store, "--run", "first", "-o", str(tmp_path / "first.html" / "x.html"))
    assert blocked.returncode == 1 and "cannot write" in blocked.stderr and "Traceback" not in blocked.stderr


def test_drop_run_deletes_what_that_run_computed_and_its_dependents(store):
    dropped = memostore_command("drop", store, "square", "--run", "second", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    # The second run computed square(2), and plus_one of it; the first run's calls stay.
    assert "will delete 2 call(s): 1 of plus_one, 1 of square" in dropped.stdout
    ops = {row["op"]: row["calls"] for row in json.loads(memostore_command("ops", store, "--format", "json").stdout)}
    assert ops == {"square": 2, "plus_one": 2}
