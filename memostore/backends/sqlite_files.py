"""What a SQLite file at a ``db_path`` is: a memostore store, another
application's database, or no database at all. A storage never takes over a
file that is not its own unless told to.
"""

from __future__ import annotations

import os
import sqlite3

from memostore.backends.schema import meta
from memostore.errors import CorruptStoreError, StorageOptionError, StoreLocationError

META_TABLE = meta.name  # every memostore store has it


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
