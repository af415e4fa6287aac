"""The memostore command, run for real in subprocesses against stores built here."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from memostore import Storage, content_id, op

from helpers import REPO_ROOT, run_python


@op
def inc(x):
    return x + 1


@op(output_names=["total"])
def add(x, y):
    return x + y


@op
def categories(n):
    return pd.DataFrame({"c": pd.Categorical(["a"] * n)})  # stored pickled


@op
def fragile(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x


def memostore_command(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m memostore ARGS`` in a fresh process, away from this module's code."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "memostore", *args], capture_output=True, text=True,
                          input=stdin, env=env, cwd=REPO_ROOT.parent, timeout=120)


def build(storage: Storage) -> None:
    with storage:
        for i in range(3):
            add(inc(i), 10)
        categories(2)
    storage.map(fragile, [{"x": 1}, {"x": -1}], on_error="record", progress=False)
    storage.close()


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store built by this module's ops, named as the command takes it: a path or a URL."""
    if request.param == "file":
        location = str(tmp_path / "runs.db")
        build(Storage(db_path=location))
    else:
        location = request.getfixturevalue("postgres_url")
        build(Storage(db_url=location))
    return location


def test_info_and_ops_list_what_is_stored(store):
    info = memostore_command("info", store)
    assert info.returncode == 0, info.stderr
    assert "ops=4, calls=9" in info.stdout
    ops = memostore_command("ops", store, "--format", "json")
    rows = {row["op"]: row for row in json.loads(ops.stdout)}
    assert set(rows) == {"add", "categories", "fragile", "inc"}
    assert rows["inc"]["calls"] == 3 and rows["inc"]["versions"] == 1


def test_calls_show_values_and_leave_pickles_unloaded_unless_trusted(store):
    result = memostore_command("calls", store, "add", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted((row["x"], row["y"], row["-> total"]) for row in rows) == [(1, 10, 11), (2, 10, 12), (3, 10, 13)]
    pickled = json.loads(memostore_command("calls", store, "categories", "--format", "json").stdout)
    assert pickled[0]["-> output_0"] == "<pickled, not loaded>"
    trusted = json.loads(memostore_command("calls", store, "categories", "--format", "json", "--trust").stdout)
    assert "c" in trusted[0]["-> output_0"]


def test_calls_filter_by_status_and_limit(store):
    failed = json.loads(memostore_command("calls", store, "fragile", "--status", "failed", "--format", "json").stdout)
    assert [(row["x"], row["status"]) for row in failed] == [(-1, "failed")]
    assert "ValueError: negative: -1" in failed[0]["error"]
    limited = memostore_command("calls", store, "inc", "--limit", "2", "--format", "csv")
    assert len(limited.stdout.strip().splitlines()) == 3  # a header and two calls


def test_calls_show_ints_as_ints_and_missing_cells_blank(store):
    # The failed call has no output: the ok call's output stays the int 1, not 1.0 as a float column has it.
    rows = json.loads(memostore_command("calls", store, "fragile", "--format", "json").stdout)
    outputs = {row["x"]: row["-> output_0"] for row in rows}
    assert outputs == {1: 1, -1: None} and isinstance(outputs[1], int)
    csv_text = memostore_command("calls", store, "fragile", "--format", "csv").stdout
    csv_rows = [line.split(",") for line in csv_text.splitlines()]
    at = csv_rows[0].index("-> output_0")
    assert sorted(row[at] for row in csv_rows[1:]) == ["", "1"]
    table = memostore_command("calls", store, "fragile").stdout
    assert table.count("failed") == 1 and not any(word in table for word in ("NaN", "None", "1.0"))


def test_source_versions_and_diff_without_the_code(tmp_path):
    # The code changes between two runs, as it does in a project; the command reads both versions.
    location = str(tmp_path / "runs.db")
    for factor in (2, 3):
        (tmp_path / "pipeline.py").write_text(f"from memostore import op\n\n@op\ndef scale(x):\n"
                                              f"    return x * {factor}\n")
        run_python(f"""
            from memostore import Storage
            from pipeline import scale
            with Storage(db_path={location!r}):
                scale(1)
            """, cwd=tmp_path)
    versions = json.loads(memostore_command("versions", location, "scale", "--format", "json").stdout)
    assert len(versions) == 2
    old, new = versions[0]["version"], versions[1]["version"]
    assert "x * 2" in memostore_command("source", location, "scale", "--version", old[:8]).stdout
    latest = memostore_command("source", location, "scale")
    assert latest.returncode == 0 and "x * 3" in latest.stdout
    diff = memostore_command("diff", location, "scale", old[:8], new[:8]).stdout
    assert "-    return x * 2" in diff and "+    return x * 3" in diff


def test_source_shows_the_code_that_ran_last_after_a_parameter_grew(tmp_path):
    location = str(tmp_path / "runs.db")
    for code, call in (("def train(x):\n    return x * 1\n", "train(1)"),
                       ("def train(x, n=NewArgDefault(1)):\n    return x * n\n", "train(1, n=5)")):
        (tmp_path / "grown.py").write_text(f"from memostore import NewArgDefault, op\n\n@op\n{code}")
        run_python(f"""
            from memostore import Storage
            from grown import train
            with Storage(db_path={location!r}):
                {call}
            """, cwd=tmp_path)
    shown = memostore_command("source", location, "train").stdout
    assert "def train(x, n=NewArgDefault(1)):" in shown and "return x * n" in shown


def test_drop_asks_lists_dependents_and_deletes_on_yes(tmp_path):
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    version = json.loads(memostore_command("versions", location, "inc", "--format", "json").stdout)[0]["version"]
    refused = memostore_command("drop", location, "inc", "--version", version[:6], stdin="n\n")
    assert refused.returncode == 3
    assert "will delete 6 call(s): 3 of add, 3 of inc" in refused.stdout
    assert "calls=9" in memostore_command("info", location).stdout
    done = memostore_command("drop", location, "inc", "--version", version[:6], "--yes")
    assert done.returncode == 0, done.stderr
    assert "calls=3" in memostore_command("info", location).stdout
    freed = memostore_command("gc", location)
    assert freed.returncode == 0 and "deleted" in freed.stdout


def test_drop_stale_keeps_the_latest_version(tmp_path):
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    nothing = memostore_command("drop", location, "inc", "--stale", "--yes")
    assert nothing.returncode == 0 and "nothing to drop" in nothing.stdout
    both = memostore_command("drop", location, "inc", "--stale", "--version", "ab")
    assert both.returncode == 2 and "exactly one of" in both.stderr


def test_errors_have_exit_codes_and_say_what_is_wrong(tmp_path):
    missing = memostore_command("info", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no store at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()  # reading never creates a store
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    unknown = memostore_command("calls", location, "nope")
    assert unknown.returncode == 2 and "stored ops: add, categories, fragile, inc" in unknown.stderr
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    broken = memostore_command("ops", str(garbage))
    assert broken.returncode == 1 and broken.stderr.startswith("Error: ")
    assert "Traceback" not in broken.stderr


def test_the_console_script_is_installed_and_matches_python_m(tmp_path):
    script = shutil.which("memostore", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if script is None:
        pytest.skip("the memostore console script is not installed: pip install -e .")
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    via_script = subprocess.run([script, "ops", location, "--format", "csv"], capture_output=True, text=True)
    assert via_script.returncode == 0, via_script.stderr
    assert via_script.stdout == memostore_command("ops", location, "--format", "csv").stdout


def test_check_reports_a_damaged_value_and_repair_drops_its_calls(tmp_path):
    location = tmp_path / "runs.db"
    build(Storage(db_path=location))
    healthy = memostore_command("check", str(location))
    assert healthy.returncode == 0 and healthy.stdout.strip().endswith("ok"), healthy.stdout + healthy.stderr
    with sqlite3.connect(location) as connection:  # damage the stored output of add(inc(0), 10) == 11
        cid = content_id(11)
        key = bytes.fromhex(cid)  # the tables hold ids as 16 bytes
        connection.execute("UPDATE memostore_values SET inline_data = ? WHERE cid = ?",
                           (b"\x00" * len(connection.execute("SELECT inline_data FROM memostore_values "
                                                             "WHERE cid = ?", (key,)).fetchone()[0]), key))
    damaged = memostore_command("check", str(location))
    assert damaged.returncode == 1 and f"damaged value {cid}" in damaged.stdout
    repaired = memostore_command("check", str(location), "--repair")
    assert repaired.returncode == 0 and "dropped 1 call(s)" in repaired.stdout
    assert memostore_command("check", str(location)).returncode == 0


def test_upgrade_brings_an_old_store_to_this_schema_and_is_then_a_no_op(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "v1" / "store.db"
    location = tmp_path / "store.db"
    shutil.copy(fixture, location)
    upgraded = memostore_command("upgrade", str(location))
    assert upgraded.returncode == 0 and upgraded.stdout.startswith("applied") and "v3" in upgraded.stdout, \
        upgraded.stderr
    assert (tmp_path / "store.db.schema-v1.bak").is_file()  # the old file is kept beside it
    with sqlite3.connect(location) as connection:
        assert connection.execute("SELECT value FROM memostore_meta WHERE key = 'schema_version'").fetchone() == ("3",)
    again = memostore_command("upgrade", str(location))
    assert again.returncode == 0 and "already current" in again.stdout
    missing = memostore_command("upgrade", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no store at" in missing.stderr
    assert not (tmp_path / "nope.db").exists()


def test_backup_copies_a_store_that_then_opens_with_every_value(tmp_path):
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    copy = tmp_path / "copy.db"
    made = memostore_command("backup", location, str(copy))
    assert made.returncode == 0 and "backed up to" in made.stdout, made.stderr
    restored = Storage(db_path=copy)
    assert sorted(restored.unwrap(c.outputs["total"]) for c in restored.reader.calls_of_op("add")) == [11, 12, 13]
    assert restored._store.counts() == Storage(db_path=location)._store.counts()
    exists = memostore_command("backup", location, str(copy))
    assert exists.returncode == 1 and "the file exists" in exists.stderr


def test_reading_never_creates_or_changes_a_file_and_closed_input_is_a_no(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for target, message in ((empty, "the file is empty"), (tmp_path, "it is a folder"),
                            (f"sqlite:///{tmp_path / 'new.db'}", "does not exist")):
        result = memostore_command("info", str(target))
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert empty.read_bytes() == b"" and not (tmp_path / "new.db").exists()
    location = str(tmp_path / "runs.db")
    build(Storage(db_path=location))
    closed = subprocess.run([sys.executable, "-m", "memostore", "drop", location, "inc", "--stale"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert closed.returncode == 0 and "nothing to drop" in closed.stdout  # one version: nothing stale
    version = json.loads(memostore_command("versions", location, "inc", "--format", "json").stdout)[0]["version"]
    unanswered = subprocess.run([sys.executable, "-m", "memostore", "drop", location, "inc", "--version",
                                 version[:6]], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert unanswered.returncode == 3 and "nothing deleted" in unanswered.stdout
    assert memostore_command("drop", location, "inc", "--version", "").returncode == 2
