"""A script that ends without storage.close() leaves its calls in the .db file, not only in its write-ahead log."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

from memostore import Storage

from helpers import REPO_ROOT, run_python

WRITE_CALLS = """
    from memostore import Storage, op

    @op
    def double(x):
        return 2 * x

    storage = Storage(db_path="runs.db")
    with storage:
        for x in range(50):
            double(x)
"""


def _calls_in_copy_of_file_alone(tmp_path) -> int:
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "runs.db", copy_dir / "runs.db")  # the .db file only, as `cp` or git would take it
    with sqlite3.connect(copy_dir / "runs.db") as connection:
        return connection.execute("SELECT count(*) FROM memostore_calls").fetchone()[0]


def _log_bytes(tmp_path) -> int:
    log = tmp_path / "runs.db-wal"
    return log.stat().st_size if log.exists() else 0


def test_a_script_that_never_closes_its_store_leaves_every_call_in_the_file(tmp_path) -> None:
    run_python(WRITE_CALLS, cwd=tmp_path)
    assert _log_bytes(tmp_path) == 0
    assert _calls_in_copy_of_file_alone(tmp_path) == 50


def test_a_script_that_closed_its_store_already_exits_cleanly(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(WRITE_CALLS) + "storage.close()\n"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0 and result.stderr == ""
    assert _calls_in_copy_of_file_alone(tmp_path) == 50


def test_exit_does_not_wait_for_another_process_that_has_the_store_open(tmp_path) -> None:
    with Storage(db_path=tmp_path / "runs.db") as reader:  # this process keeps a connection open
        run_python(WRITE_CALLS, cwd=tmp_path, timeout=60)
        assert "calls=50" in repr(reader)
        reader.close()  # the last connection: the log is folded into the file
    assert _log_bytes(tmp_path) == 0
    assert _calls_in_copy_of_file_alone(tmp_path) == 50


def test_a_forked_child_exiting_leaves_its_parents_connection_open(tmp_path) -> None:
    out = run_python(WRITE_CALLS + """
    import os, sys
    repr(storage)  # reads the store: the parent's connection is open
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # a normal exit: atexit handlers run in the child
    os.waitpid(pid, 0)
    print(os.path.exists("runs.db-wal") and os.path.getsize("runs.db-wal") > 0)  # the parent still has its log
    with storage:
        for x in range(50, 60):
            double(x)
    print(repr(storage))
    """, cwd=tmp_path)
    log_kept, stored = out.split("\n")[:2]
    assert log_kept == "True" and "calls=60" in stored
    assert _log_bytes(tmp_path) == 0
    assert _calls_in_copy_of_file_alone(tmp_path) == 60
