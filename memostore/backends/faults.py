"""Driver and file-system errors that mean "the disk is full" or "the database is
damaged", turned into errors a user can act on (``StorageFullError``,
``CorruptStoreError``) instead of raw ``sqlite3``/``psycopg``/``OSError``s.
"""

from __future__ import annotations

import errno

from memostore.errors import CorruptStoreError, StorageError, StorageFullError

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FULL_TEXTS = ("database or disk is full", "no space left on device", "could not extend file",
               "disk quota exceeded")
_FULL_SQLSTATES = frozenset({"53100"})  # PostgreSQL disk_full
_CORRUPT_TEXTS = ("database disk image is malformed", "file is not a database", "could not decode to utf-8")
_CORRUPT_SQLSTATES = frozenset({"XX001", "XX002"})  # PostgreSQL data_corrupted, index_corrupted


def storage_error(err: BaseException, where: str) -> StorageError | None:
    """The actionable error behind ``err`` (or its causes), or None for other errors
    (and for an error that is already one of these)."""
    if isinstance(err, (StorageFullError, CorruptStoreError)):
        return None
    seen: BaseException | None = err
    while seen is not None:
        driver = getattr(seen, "orig", None) or seen  # SQLAlchemy wraps the driver's error
        text = str(driver).lower()
        sqlstate = getattr(driver, "sqlstate", None)
        if (isinstance(driver, OSError) and driver.errno in _FULL_ERRNOS) or sqlstate in _FULL_SQLSTATES \
                or any(part in text for part in _FULL_TEXTS):
            return StorageFullError(
                f"the disk holding the store at {where} is full ({driver}): nothing committed was "
                "lost, and the calls not committed yet are still pending; free some space, then "
                "call storage.commit() (or leave the next `with storage:` block) to write them")
        if sqlstate in _CORRUPT_SQLSTATES or any(part in text for part in _CORRUPT_TEXTS):
            return CorruptStoreError(
                f"the database of the store at {where} is damaged ({driver}): run storage.check() "
                "(or `memostore check DB`) to see what can still be served, or restore the file "
                "from a backup")
        seen = seen.__cause__ or seen.__context__
    return None
