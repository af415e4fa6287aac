"""Runs: every outermost block and map is recorded, with what it computed and what it found stored."""

from __future__ import annotations

import getpass
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from memostore import RunError, Storage, UnknownRunError, op


@op
def inc(x):
    return x + 1


@op
def double(x):
    return 2 * x


@op
def fragile(x):
    if x < 0:
        raise ValueError("negative")
    return x


def test_a_labelled_run_records_when_where_and_which_calls(storage):
    with storage.run("wide-net", tags={"dataset": "v2"}):
        double(inc(1))
        double(inc(2))
    first = storage.last_run
    with storage:
        double(inc(1))  # found stored
        double(inc(3))  # computed
    second = storage.last_run
    runs = storage.runs()
    assert list(runs["run"]) == [first.run_id, second.run_id]
    row = runs.iloc[0]
    assert (row["label"], row["kind"], row["tags"]) == ("wide-net", "block", {"dataset": "v2"})
    assert (row["computed"], row["hits"], row["failed"]) == (4, 0, 0)
    assert (row["host"], row["user"]) == (socket.gethostname(), getpass.getuser())
    assert row["started_at"] <= row["finished_at"] and row["duration_s"] >= 0
    assert (runs.iloc[1]["computed"], runs.iloc[1]["hits"]) == (2, 2)
    # The second run's calls: two computed, two found stored.
    calls = storage.run_calls(second)
    assert sorted((c.op, storage.unwrap(c.inputs["x"])) for c in calls) == [
        ("double", 2), ("double", 4), ("inc", 1), ("inc", 3)]
    computed = storage.run_calls(second.run_id, include_loaded=False)
    assert sorted((c.op, storage.unwrap(c.inputs["x"])) for c in computed) == [("double", 4), ("inc", 3)]
    assert {c.hid for c in calls} - {c.hid for c in computed} == storage.run_loaded_hids(second)
    # By label, the frame of the run's calls.
    frame = storage.cf(run="wide-net").expand_back(recursive=True)
    assert sorted(storage.unwrap(v) for v in frame.df(values="refs")["var_0"].dropna()) == [4, 6]


def test_blocks_that_do_nothing_are_not_runs_and_say_so(storage):
    with storage:
        pass
    assert storage.last_run is not None and storage.last_run.run_id is None
    assert storage.runs().empty
    with pytest.raises(UnknownRunError, match="not recorded as a run"):
        storage.run_calls(storage.last_run)
    with storage.run("empty but named"):
        pass
    assert list(storage.runs()["label"]) == ["empty but named"]


def test_a_map_is_a_run_and_inside_a_block_is_part_of_it(storage):
    storage.map(inc, [{"x": 10}, {"x": 11}], progress=False)
    with storage.run("outer"):
        storage.map(inc, [{"x": 10}, {"x": 12}], progress=False)
        inc(13)
    runs = storage.runs()
    assert list(runs["kind"]) == ["map", "block"]
    assert list(runs["computed"]) == [2, 2] and list(runs["hits"]) == [0, 1]


def test_failed_calls_belong_to_their_run(storage):
    storage.map(fragile, [{"x": 1}, {"x": -1}], on_error="record", progress=False)
    calls = storage.run_calls(storage.last_run)
    assert sorted(c.status for c in calls) == ["failed", "ok"]
    assert storage.runs().iloc[0]["failed"] == 1


def test_runs_do_not_nest_and_take_text(storage):
    with storage:
        with pytest.raises(RunError, match="runs do not nest"):
            with storage.run("inner"):
                pass
    with pytest.raises(RunError, match="dict of text to text"):
        storage.run("x", tags={"lr": 0.1})  # refused at the call, before any block
    with pytest.raises(RunError, match="non-empty text"):
        storage.run("")
    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        storage.cf(run="nope")


def test_a_ref_given_as_run_says_what_run_takes():
    storage = Storage()
    with storage.run("first"):
        ref = inc(3)
    with pytest.raises(RunError, match=r"run= takes a run id .*storage.last_run, got Ref .*storage.cf\(ref\)"):
        storage.cf(run=ref)
    with pytest.raises(RunError, match="got bool True"):
        storage.run_calls(True)  # True == 1, but it names no run
    assert len(storage.cf(run="first").df()) == len(storage.cf(run=1).df()) == 1


def test_runs_are_kept_by_the_store_for_the_next_process(tmp_path):
    path = tmp_path / "runs.db"
    storage = Storage(db_path=path)
    with storage.run("kept", tags={"who": "me"}):
        double(inc(5))
    storage.close()
    script = textwrap.dedent(f"""
        from memostore import Storage
        storage = Storage(db_path={str(path)!r})
        runs = storage.runs()
        print(runs.loc[0, "label"], runs.loc[0, "tags"], len(storage.run_calls("kept")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "kept {'who': 'me'} 2"


def test_a_run_whose_process_dies_keeps_what_it_committed(tmp_path):
    path = tmp_path / "runs.db"
    script = textwrap.dedent(f"""
        import os
        from memostore import Storage, op

        @op
        def step(x):
            return x * 10

        storage = Storage(db_path={str(path)!r})
        with storage.run("killed"):
            step(1)
            storage.commit()
            os._exit(3)
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 3
    storage = Storage(db_path=path)
    row = storage.runs().iloc[0]
    assert row["label"] == "killed" and pd.isna(row["finished_at"])
    assert [c.op for c in storage.run_calls("killed")] == ["step"]


def test_a_schema_2_store_gains_runs_when_opened(tmp_path):
    from alembic.runtime.environment import EnvironmentContext
    from sqlalchemy import create_engine

    from memostore.backends.migrations import script_directory

    fixture = Path(__file__).parent / "fixtures" / "v1"
    path = tmp_path / "store.db"
    shutil.copy(fixture / "store.db", path)
    shutil.copytree(fixture / "store.db-blobs", tmp_path / "blobs")
    config, script = script_directory()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection, EnvironmentContext(
            config, script, fn=lambda rev, ctx: script._upgrade_revs("v2", rev), destination_rev="v2") as env:
        env.configure(connection=connection, version_table="memostore_alembic_version")
        env.run_migrations()
    engine.dispose()
    storage = Storage(db_path=path, blob_dir=tmp_path / "blobs")
    with sqlite3.connect(tmp_path / "store.db.schema-v2.bak") as copy:
        assert copy.execute("SELECT value FROM memostore_meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert storage.runs().empty
    calls_before = storage._store.counts()["calls"]
    with storage.run("after the upgrade"):
        inc(100)
    assert storage._store.counts()["calls"] == calls_before + 1
    assert [c.op for c in storage.run_calls("after the upgrade")] == ["inc"]
    # A report of calls stored before runs were recorded says so, instead of naming a run.
    storage.report(storage.cf("add"), tmp_path / "old.html")
    assert "before runs were recorded" in (tmp_path / "old.html").read_text(encoding="utf-8")


def test_blocks_of_threads_that_overlap_share_one_run(tmp_path):
    import threading

    storage = Storage(db_path=tmp_path / "threads.db")
    both_inside = threading.Barrier(2)

    def work(x):
        with storage:
            inc(x)
            both_inside.wait(timeout=30)
            storage.commit()
            both_inside.wait(timeout=30)

    threads = [threading.Thread(target=work, args=(x,)) for x in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = storage.runs()
    assert len(runs) == 1 and not pd.isna(runs.iloc[0]["finished_at"])
    assert sorted(storage.unwrap(c.inputs["x"]) for c in storage.run_calls(runs.iloc[0]["run"])) == [1, 2]
