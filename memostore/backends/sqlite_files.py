"""What a SQLite file at a ``db_path`` is: a memostore store, another
application's database, or no database at all. A storage never takes over a
file that is not its own unless told to. Also the settings of a connection to
a store file, and when its write-ahead log is folded back into it.
"""

from __future__ import annotations

import os
import sqlite3

from memostore.backends.schema import meta
from memostore.errors import CorruptStoreError, StorageOptionError, StoreLocationError

META_TABLE = meta.name  # every memostore store has it
PAGE_CACHE_KIB = 256 * 1024  # SQLite page cache per connection, at most
# The write-ahead log is folded back into the file (a checkpoint) once it holds as many pages as the
# file, between SQLite's default of 1000 pages and WAL_MAX_BYTES (see checkpoint_pages).
WAL_MIN_PAGES = 1000
PAGE_BYTES = 4096  # SQLite's default page size, which memostore keeps (smaller pages cost more system calls)
WAL_MAX_BYTES = 512 * 1024 * 1024
WAL_KEPT_BYTES = 64 * 1024 * 1024  # what a log file is cut back to after a checkpoint emptied it


def configure_file_connection(cursor: sqlite3.Cursor) -> None:
    """Set up a new connection to a store file."""
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL survives a killed process; only an OS crash
    # may lose the last transactions, never the file's integrity.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Frames read many rows by id: a larger page cache (allocated as
    # used) saves a system call per probe once the store outgrows 2 MB.
    cursor.execute("PRAGMA cache_size=-%d" % PAGE_CACHE_KIB)
    cursor.execute("PRAGMA journal_size_limit=%d" % WAL_KEPT_BYTES)


def checkpoint_pages(file_path: str) -> int | None:
    """The log size, in pages, at which to checkpoint: that of the file, within bounds (None: the file went).

    A commit of ten thousand calls into a large store inserts random keys
    into each hash index and dirties most of their pages; a checkpoint
    after every commit (SQLite's default past 1000 pages) writes those
    pages back, with two fsyncs, each time. Checkpointing every few
    commits writes a page dirtied by several of them once: at a million
    calls, 40% fewer bytes written and a quarter of the fsyncs. The log
    stays at most as large as the file, so a small store keeps a small
    log. The file's size comes from the file system: no statement runs.
    """
    try:
        file_pages = os.stat(file_path).st_size // PAGE_BYTES
    except OSError:
        return None  # the file went (a test's tmp_path, say): SQLite's default applies
    return max(WAL_MIN_PAGES, min(file_pages, WAL_MAX_BYTES // PAGE_BYTES))


def sqlite_tables(path: str) -> set[str] | None:
    """The table names in the SQLite file at ``path`` (opened read-only), or None if it is not a SQLite database."""
    connection = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
    try:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None
    finally:
        connection.close()


def check_sqlite_file(db_path: str, create: bool | str) -> None:
    """Refuse a missing store when ``create=False``, and another application's database unless told to."""
    if create not in (True, False, "alongside"):
        raise StorageOptionError(f"Storage(create=...) takes True, False or 'alongside', got {create!r}")
    if not os.path.exists(db_path) or os.path.getsize(db_path) == 0:
        if create is False:
            empty = " (an empty file, which holds no memostore store)" if os.path.exists(db_path) else ""
            raise StoreLocationError(f"no store at db_path={db_path!r}{empty}, and create=False opens only an "
                                     "existing one; check the path, or leave create=True to make a new store there")
        return
    if os.path.isdir(db_path):
        return  # the open itself explains why a directory cannot be a store
    tables = sqlite_tables(db_path)
    if tables is None:
        raise CorruptStoreError(
            f"db_path={db_path!r} is a file but not a SQLite database: another kind of file, or a store "
            "whose file is damaged beyond what storage.check() can read; restore a store from its backup, "
            "or choose another path for a new one")
    if create is False and not tables and not _has_log(db_path):  # a log may hold the schema, read or not
        raise StoreLocationError(
            f"db_path={db_path!r} is a SQLite database without tables, which holds no memostore store, and "
            "create=False opens only an existing store; check the path, or leave create=True to make a new "
            "store there")
    if tables and META_TABLE not in tables and create != "alongside":
        raise StoreLocationError(
            f"db_path={db_path!r} is another application's SQLite database (tables {sorted(tables)[:5]}), "
            "not a memostore store; choose another path, or pass create='alongside' to add memostore's "
            "tables beside its own")


def _has_log(db_path: str) -> bool:
    """Whether a write-ahead log with content lies beside the file."""
    try:
        return os.path.getsize(db_path + "-wal") > 0
    except OSError:
        return False
