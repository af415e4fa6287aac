"""The SQLite connection's settings: how far the write-ahead log grows before a checkpoint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from memostore.backends.database import Database
from memostore.backends.sqlite_files import PAGE_BYTES, WAL_MIN_PAGES

FRAME_BYTES = 24 + PAGE_BYTES  # a log frame: its header and one page
ROW_BYTES = 3000  # one row per page


def log_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return max(0, wal.stat().st_size - 32) // FRAME_BYTES if wal.exists() else 0


def fill(db: Database, first: int, rows: int) -> None:
    """Write ``rows`` rows of about a page each, from id ``first`` on, replacing rows already there."""
    db.run(lambda cursor: cursor.executemany(
        "INSERT OR REPLACE INTO t (id, data) VALUES (?, ?)",
        [(i, bytes([i % 251]) * ROW_BYTES) for i in range(first, first + rows)]))


def test_a_store_larger_than_the_default_log_is_checkpointed_as_its_log_reaches_its_size(tmp_path):
    path = tmp_path / "store.db"
    db = Database(f"sqlite:///{path}")
    db.run(lambda cursor: cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)"))
    fill(db, 0, 3 * WAL_MIN_PAGES)  # past SQLite's default: checkpointed into the file
    db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the log file starts empty
    file_pages = path.stat().st_size // PAGE_BYTES
    assert file_pages > 2 * WAL_MIN_PAGES
    high_water = 0
    for start in range(0, 3 * WAL_MIN_PAGES, 500):  # rewrite every row, 500 at a time
        fill(db, start, 500)
        high_water = max(high_water, log_pages(path))
        # The log never holds more than the file's pages and one commit's (and a little B-tree upkeep).
        assert log_pages(path) <= file_pages + 500 + 50
    assert high_water > 2 * WAL_MIN_PAGES  # SQLite's default would have checkpointed at 1000
    db.close()
    with sqlite3.connect(path) as other:  # everything committed is there, the log folded in or not
        found = other.execute("SELECT count(*), sum(length(data)) FROM t").fetchone()
    assert found == (3 * WAL_MIN_PAGES, 3 * WAL_MIN_PAGES * ROW_BYTES)


def test_a_small_store_keeps_sqlites_small_log(tmp_path):
    path = tmp_path / "small.db"
    db = Database(f"sqlite:///{path}")
    db.run(lambda cursor: cursor.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)"))
    for start in range(0, 3000, 200):
        fill(db, start % 600, 200)  # a 600-page store written over and over
        assert log_pages(path) <= WAL_MIN_PAGES + 200 + 50
    db.close()
