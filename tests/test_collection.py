"""Garbage collection while other processes write: nothing a committed call names is lost.

A writer reuses values (so its cache says they are stored) while a janitor
drops calls and cleans up, both real processes racing on one store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import memostore.buffer
from memostore import Storage, op

from helpers import REPO_ROOT, run_python

OPEN = """
import sys
from memostore import Storage
where, blob_dir = sys.argv[1], sys.argv[2]
storage = (Storage(db_url=where, blob_dir=blob_dir, blob_threshold_bytes=500) if "://" in where
           else Storage(db_path=where, blob_threshold_bytes=500))
"""

WRITER = OPEN + textwrap.dedent("""
    import json, os
    import numpy as np
    from memostore import MissingBlobError, NotStoredError, op

    @op(version="1")
    def make(i):
        return np.full(100 + 10 * (i % 3), float(i % 50))  # 150 contents, 400 calls: values are reused

    @op(version="1")
    def total(a):
        return float(a.sum())

    done, served_missing, iterations = sys.argv[3], [], 0
    while not os.path.exists(done) and iterations < 5000:
        with storage:
            i = iterations % 400
            a, t = make(i), None
            t = total(a)
            try:
                value = storage.unwrap(t)
                assert value == (100 + 10 * (i % 3)) * float(i % 50), (i, value)
                storage.unwrap(a)
            except (NotStoredError, MissingBlobError) as err:
                served_missing.append(str(err))
        iterations += 1
    print(json.dumps({"iterations": iterations, "served_missing": served_missing}))
""")

JANITOR = OPEN + textwrap.dedent("""
    import json, random, time
    from memostore import op

    @op(version="1")
    def own(k):  # values only the janitor makes: the writer recomputes its dropped calls too fast
        return f"janitor-{k}" * 10  # to leave anything of its own unused by the time cleanup runs

    rounds, dropped, freed = int(sys.argv[3]), 0, 0
    random.seed(0)
    with storage:
        for k in range(20):
            own(k)
    # The writer is well under way (its iterations' totals committed) before the rounds race it, however
    # slowly either process started: the writer's count of iterations does not depend on the machine's speed.
    deadline = time.monotonic() + 240
    while len(storage.reader.calls_of_op("total")) <= 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    for round_ in range(rounds):
        calls = storage.reader.calls_of_op("make")
        victims = random.sample(calls, len(calls) // 2) + (storage.reader.calls_of_op("own") if round_ == 0 else [])
        dropped += len(storage.drop_calls(victims))
        freed += storage.cleanup_refs(grace_s=0)["values"]
    print(json.dumps({"dropped": dropped, "freed": freed}))
""")


def race(tmp_path, where: str, rounds: int) -> tuple[dict, dict]:
    blob_dir, done = tmp_path / "blobs", tmp_path / "janitor-done"
    env = {"PYTHONPATH": str(REPO_ROOT)}
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "janitor.py").write_text(JANITOR)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), where, str(blob_dir), str(done)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    janitor = subprocess.run([sys.executable, str(tmp_path / "janitor.py"), where, str(blob_dir), str(rounds)],
                             env=env, capture_output=True, text=True, timeout=300)
    done.write_text("")
    out, err = writer.communicate(timeout=300)
    assert janitor.returncode == 0, janitor.stderr
    assert writer.returncode == 0, err
    return json.loads(out), json.loads(janitor.stdout)


def assert_every_call_loads(storage: Storage) -> int:
    """Every stored call's inputs and outputs load; returns how many calls."""
    calls = [call for name in ("make", "total") for call in storage.reader.calls_of_op(name)]
    refs = [ref for call in calls for ref in (*call.inputs.values(), *call.outputs.values())]
    storage.unwrap(refs)
    return len(calls)


def dangling_rows(storage: Storage) -> dict[str, int]:
    """Edges without their ref or value, refs without their value."""
    queries = {
        "edges without ref": "SELECT COUNT(*) FROM memostore_edges e LEFT JOIN memostore_refs r "
                             "ON r.id = e.ref_id WHERE r.id IS NULL",
        "edges without value": "SELECT COUNT(*) FROM memostore_edges e JOIN memostore_refs r ON r.id = e.ref_id "
                               "LEFT JOIN memostore_values v ON v.cid = r.cid WHERE v.cid IS NULL",
        "refs without value": "SELECT COUNT(*) FROM memostore_refs r LEFT JOIN memostore_values v "
                              "ON v.cid = r.cid WHERE v.cid IS NULL",
    }
    connection = storage._store._connection()
    found = {}
    for name, sql in queries.items():
        cursor = connection.cursor()
        cursor.execute(sql)
        found[name] = cursor.fetchone()[0]
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_cleanup_racing_a_writer_loses_nothing_committed(tmp_path, backend, request):
    where = str(tmp_path / "race.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    writer, janitor = race(tmp_path, where, rounds=4)
    assert writer["served_missing"] == []
    assert writer["iterations"] > 40 and janitor["dropped"] > 0 and janitor["freed"] > 0
    storage = (Storage(db_path=where) if backend == "sqlite"
               else Storage(db_url=where, blob_dir=tmp_path / "blobs"))
    assert dangling_rows(storage) == dict.fromkeys(dangling_rows(storage), 0)
    assert assert_every_call_loads(storage) > 0
    storage.cleanup_refs(grace_s=0)  # what is left is still whole after one more cleanup
    assert assert_every_call_loads(storage) > 0


# --- one process's cache against another's drop and cleanup -----------------------------------------



@op(version="1")
def ramp(n):
    return np.arange(float(n))


@op(version="1")
def same_ramp(n):
    return np.arange(float(n))


@op(version="1")
def inner(n):
    return np.arange(float(n))


@op(version="1")
def outer(x):
    return float(inner(300).sum()) + x


def drop_and_clean_elsewhere(db_path, op_name: str, tmp_path) -> None:
    run_python(f"""
        from memostore import Storage
        storage = Storage(db_path={str(db_path)!r})
        storage.drop_calls(storage.reader.calls_of_op({op_name!r}))
        assert storage.cleanup_refs()["values"] > 0
    """, tmp_path)


def test_a_process_stops_serving_calls_another_process_dropped(db_path, tmp_path):
    storage = Storage(db_path=db_path)
    with storage:
        ramp(300)  # now in this process's cache
    drop_and_clean_elsewhere(db_path, "ramp", tmp_path)
    with storage:
        again = ramp(300)
    assert again.in_memory, "computed again, not served from the cache"
    np.testing.assert_array_equal(storage.unwrap(again), np.arange(300.0))


def test_a_flush_writes_again_a_value_another_process_deleted_whatever_its_cache_says(
        db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(memostore.buffer, "CACHE_RECHECK_S", 1e9)  # as if the cleanup struck between two checks
    storage = Storage(db_path=db_path)
    with storage:
        ramp(300)  # the array's value is now "known stored" to this process
    drop_and_clean_elsewhere(db_path, "ramp", tmp_path)
    with storage:
        same_ramp(300)  # the same array: not serialized again at the call, but the flush finds it gone
    fresh = Storage(db_path=db_path)
    [call] = fresh.reader.calls_of_op("same_ramp")
    np.testing.assert_array_equal(fresh.unwrap(call.outputs["output_0"]), np.arange(300.0))


def test_a_nested_hit_whose_values_are_gone_is_computed_again(db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(memostore.buffer, "CACHE_RECHECK_S", 1e9)
    storage = Storage(db_path=db_path)
    with storage:
        outer(1)
    drop_and_clean_elsewhere(db_path, "inner", tmp_path)
    with storage:
        result = outer(2)  # inner(300) is a hit in this process's cache, its values gone
    assert storage.unwrap(result) == float(np.arange(300.0).sum()) + 2


def test_cleanup_reclaims_old_orphan_and_temporary_blob_files(db_path):
    storage = Storage(db_path=db_path, blob_threshold_bytes=100)
    with storage:
        live = ramp(300)
    blob_dir = db_path.parent / "runs.db-blobs"
    old = time.time() - 7200
    planted = {"temp": blob_dir / "ab" / ".tmp-killed", "orphan": blob_dir / "ab" / ("ab" + "0" * 30),
               "young orphan": blob_dir / "cd" / ("cd" + "1" * 30), "not ours": blob_dir / "ab" / "notes.txt"}
    for name, path in planted.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        if name != "young orphan":
            os.utime(path, (old, old))
    freed = storage.cleanup_refs(grace_s=3600)
    assert freed == {"refs": 0, "values": 0, "files": 2, "bytes": 2000}
    assert not planted["temp"].exists() and not planted["orphan"].exists()
    assert planted["young orphan"].exists() and planted["not ours"].exists()
    np.testing.assert_array_equal(storage.unwrap(live), np.arange(300.0))
