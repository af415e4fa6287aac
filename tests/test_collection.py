"""Garbage collection while other processes write: nothing a committed call names is lost.

A writer reuses values (so its cache says they are stored) while a janitor
drops calls and cleans up, both real processes racing on one store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO_ROOT

from memostore import Storage

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
    rounds, dropped, freed = int(sys.argv[3]), 0, 0
    random.seed(0)
    time.sleep(0.5)  # let the writer store a first batch
    for _ in range(rounds):
        calls = storage.reader.calls_of_op("make")
        victims = random.sample(calls, len(calls) // 2)
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
                             "ON r.hid = e.ref_hid WHERE r.hid IS NULL",
        "edges without value": "SELECT COUNT(*) FROM memostore_edges e LEFT JOIN memostore_values v "
                               "ON v.cid = e.ref_cid WHERE v.cid IS NULL",
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
