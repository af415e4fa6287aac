"""Many processes writing one store: nothing lost, nothing duplicated."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from helpers import REPO_ROOT

from memostore import Storage

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
            "SELECT COUNT(*) FROM memostore_edges e LEFT JOIN memostore_refs r ON r.hid = e.ref_hid "
            "WHERE r.hid IS NULL").fetchone()[0]
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
