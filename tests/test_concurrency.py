"""Many processes writing one store: nothing lost, nothing duplicated."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from memostore import Storage
from memostore.backends.sql import SqlMetadataStore
from memostore.model import call_ids

from helpers import REPO_ROOT

WORKER = textwrap.dedent("""
    import sys
    from memostore import Storage, op

    @op(version="1")
    def combine(a, b):
        return {"sum": a + b, "pair": (a, b)}

    worker, where = int(sys.argv[1]), sys.argv[2]
    storage = Storage(db_url=where) if "://" in where else Storage(db_path=where)
    # Workers overlap: worker w asks for a in [100 * w, 100 * w + 500), so
    # neighbours share 400 of their 500 calls.
    for start in range(0, 500, 50):
        with storage:
            for a in range(100 * worker + start, 100 * worker + start + 50):
                combine(a, a % 7)
    print("done")
""")


DISTINCT_CALLS = 300 + 500  # a in [0, 800)


def run_workers(tmp_path, where: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {"PYTHONPATH": str(REPO_ROOT)}
    workers = [subprocess.Popen([sys.executable, str(script), str(w), where], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for w in range(4)]
    for process in workers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.strip() == "done"


def test_four_processes_overlapping_calls_store_each_once(tmp_path):
    db_path = tmp_path / "shared.db"
    run_workers(tmp_path, str(db_path))
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        calls = connection.execute("SELECT COUNT(*), COUNT(DISTINCT hid) FROM memostore_calls").fetchone()
        assert calls == (DISTINCT_CALLS, DISTINCT_CALLS)
        edges = connection.execute("SELECT COUNT(*) FROM memostore_edges").fetchone()[0]
        assert edges == DISTINCT_CALLS * 3
        dangling = connection.execute(
            "SELECT COUNT(*) FROM memostore_edges e LEFT JOIN memostore_refs r ON r.id = e.ref_id "
            "WHERE r.id IS NULL").fetchone()[0]
        missing_values = connection.execute(
            "SELECT COUNT(*) FROM memostore_refs r LEFT JOIN memostore_values v ON v.cid = r.cid "
            "WHERE v.cid IS NULL").fetchone()[0]
        assert dangling == 0 and missing_values == 0


def test_four_processes_into_one_postgres_store(tmp_path, postgres_url):
    run_workers(tmp_path, postgres_url)
    storage = Storage(db_url=postgres_url)
    assert f"calls={DISTINCT_CALLS}," in repr(storage)
    table = storage.cf("combine").df()
    assert len(table) == DISTINCT_CALLS
    assert sorted(row["sum"] for row in table["var_0"]) == sorted(a + a % 7 for a in range(DISTINCT_CALLS))


SAME_CALLS = textwrap.dedent("""
    import os, sys, time
    from memostore import Storage, op

    @op(version="1")
    def slow(x, log):
        with open(log, "a") as handle:  # O_APPEND: one line per computation, from any process
            handle.write(f"{x} {os.getpid()}\\n")
        time.sleep(0.1)
        return x * 10

    where, log = sys.argv[1], sys.argv[2]
    storage = Storage(db_url=where) if "://" in where else Storage(db_path=where, claim_ttl_s=2.0)
    refs = storage.map(slow, [{"x": x, "log": log} for x in range(20)], progress=False)
    assert storage.unwrap(refs) == [x * 10 for x in range(20)]
    print("done")
""")


def run_same_calls(tmp_path, where: str, processes: int = 4) -> list[str]:
    script = tmp_path / "same.py"
    script.write_text(SAME_CALLS)
    log = tmp_path / "computed.log"
    env = {"PYTHONPATH": str(REPO_ROOT)}
    workers = [subprocess.Popen([sys.executable, str(script), where, str(log)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    for process in workers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.strip() == "done"
    return log.read_text().splitlines()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_four_maps_of_the_same_calls_compute_each_once(tmp_path, backend, request):
    where = str(tmp_path / "claims.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    lines = run_same_calls(tmp_path, where)
    computed = sorted(int(line.split()[0]) for line in lines)
    assert computed == list(range(20))


def test_a_dead_holders_claims_expire(tmp_path):
    db_path = tmp_path / "claims.db"
    log = str(tmp_path / "computed.log")
    namespace: dict = {}
    exec(compile(SAME_CALLS.split("where, log =")[0], str(tmp_path / "ops.py"), "exec"), namespace)
    slow = namespace["slow"]
    hids = [call_ids(slow.name, slow.version, slow.identify_inputs(slow.bind((), {"x": x, "log": log})))[0]
            for x in range(20)]
    # A map that died holding every claim: it will never renew nor release them.
    store = SqlMetadataStore(f"sqlite:///{db_path}")
    started = time.monotonic()  # before the claim: its 2 s count from a moment after this, however slow its commit
    assert store.claim(hids, "dead-host:1:0", ttl_s=2.0) == set(hids)
    lines = run_same_calls(tmp_path, str(db_path), processes=1)
    assert sorted(int(line.split()[0]) for line in lines) == list(range(20))
    assert time.monotonic() - started >= 1.5  # it waited for the claims to expire, then took over
