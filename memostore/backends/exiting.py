"""Closing this process's SQLite stores when the interpreter exits.

SQLite folds the write-ahead log (``runs.db-wal``) into the database file and
removes it when the last connection to the file closes. A script that ends
without ``storage.close()`` never closed its connection, so its calls stayed
in the log only, and a copy of the ``.db`` file alone lost them. Closing at
exit waits for nobody: a store another process has open keeps its log for
that process to fold in. A forked child starts with none registered: the
connections it inherited are its parent's to close.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import Any, Protocol

logger = logging.getLogger(__name__)

EXIT_LOCK_WAIT_S = 1.0  # how long to wait at exit for a store that a daemon thread may be using for good


class _Closing(Protocol):
    file_path: Any
    where: str

    def close(self, wait_s: float = -1) -> None: ...


_open: weakref.WeakSet[Any] = weakref.WeakSet()


def close_at_exit(database: _Closing) -> None:
    """Close ``database``'s connection of this process when the interpreter exits, if it is a SQLite file."""
    if database.file_path is not None:
        _open.add(database)


def _close_all() -> None:
    for database in list(_open):
        try:
            database.close(wait_s=EXIT_LOCK_WAIT_S)
        except Exception as err:  # an exiting script has nothing left to do about it
            logger.debug("could not close %s at exit: %s", database.where, err)


atexit.register(_close_all)
os.register_at_fork(after_in_child=_open.clear)
