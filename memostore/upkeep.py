"""Upkeep of a store: dropping calls and versions, reclaiming space, checking, backing up.

Deleting is where a wrong answer costs most, so every method here commits
first, refuses what it cannot find, and never removes a value a committed
call still names (see ``drop_calls``).
"""

from __future__ import annotations

import logging
import os
from operator import attrgetter
from pathlib import Path
from typing import Any

from memostore.backends.blobs import FileBlobStore
from memostore.callpath import VersionedOp, defined_ops, named_op, stored_op_name
from memostore.checking import CheckReport, check_store
from memostore.config import BLOB_DIR_SUFFIX, ORPHAN_FILE_GRACE_S, check_writable_dir
from memostore.errors import NotStoredError, StorageOptionError, StoreLocationError
from memostore.history import mark_compatible
from memostore.model import Call
from memostore.opened import OpenedStore
from memostore.reports import pick_version

logger = logging.getLogger(__name__)
_started_at = attrgetter("started_at")


class Upkeep(OpenedStore):
    """Storage's methods that delete, compact, verify and copy the store."""

    def drop_calls(self, calls: Any, delete_dependents: bool = True) -> list[Call]:
        """Delete calls (Calls, call hids, or a ``cf.df()`` column of Calls).

        With ``delete_dependents``, every call downstream of a dropped call's
        outputs goes too. All are deleted in one transaction; returns the
        dropped calls. Their values stay until ``cleanup_refs()``.

        Other processes may keep using the store meanwhile: they stop serving
        dropped calls from their caches within CACHE_RECHECK_S, and no value,
        ref or blob that a call committed by any process (before, during or
        after the cleanup) names is ever deleted.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        ...     z = double(y)
        >>> dropped = storage.drop_calls([storage.get_ref_creator(y)])
        >>> [storage.unwrap(call.result()) for call in dropped]  # z was computed from y: it goes too
        [2, 4]
        >>> storage.calls_of(double)
        []
        """
        self.commit()
        hids = call_hids_of(calls)
        missing, dropped = self._store.drop_calls(hids, delete_dependents)
        if missing:
            raise NotStoredError(f"drop_calls: {len(missing)} of {len(hids)} calls are not stored "
                                 f"(hids {missing[:3]}{' ...' if len(missing) > 3 else ''}); nothing was dropped")
        # The calls asked for, in the order given, then their dependents in the order they ran.
        by_hid = {call.hid: call for call in dropped}
        self._buffer.forget(by_hid)
        asked = [by_hid.pop(hid) for hid in hids if hid in by_hid]  # one given in upper case sorts as a dependent
        dropped = asked + sorted(by_hid.values(), key=_started_at)
        logger.info("dropped %d calls", len(dropped))
        return dropped

    def drop_stale(self, op: VersionedOp | str, delete_dependents: bool = True) -> list[Call]:
        """Drop every stored call of ``op`` (or its name) whose version is not its current one.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):  # new code, same results
        ...     return x + x
        >>> with storage:
        ...     _ = double(2)
        >>> len(storage.drop_stale(double)), len(storage.calls_of(double))
        (1, 1)
        """
        stale = self._stale_calls_of(named_op(op, self.reader, "drop_stale", need_live=True))
        return self.drop_calls(stale, delete_dependents=delete_dependents) if stale else []

    def _stale_calls_of(self, op: VersionedOp) -> list[Call]:
        # The current version as this storage computes it (with deps_path, not op.version).
        # (Finding it carries over the calls of memostore 0.1's versions of the same code: they are current.)
        current = self.version_of(op, refresh=True)
        return [c for c in self.reader.calls_of_op(op.name) if c.version != current]

    def stale_calls(self, op: VersionedOp | str | None = None) -> list[Call]:
        """Stored calls of ``op`` (default: every op defined in this process)
        whose version is not the current one.

        Drop them, with everything computed from them, with
        ``storage.drop_calls(storage.stale_calls())``.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):  # new code, same results
        ...     return x + x
        >>> [storage.unwrap(call.inputs["x"]) for call in storage.stale_calls(double)]
        [1]
        """
        if op is not None:
            return self._stale_calls_of(named_op(op, self.reader, "stale_calls", need_live=True))
        return [call for op_ in defined_ops(self.reader) for call in self._stale_calls_of(op_)]

    def drop_version(self, op: VersionedOp | str, version: str, delete_dependents: bool = True) -> list[Call]:
        """Drop every stored call of one version of ``op`` (a version id or a unique prefix).

        Returns the dropped calls; with ``delete_dependents`` the calls computed
        from their outputs go too, as in ``drop_calls``.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):  # new code, same results
        ...     return x + x
        >>> with storage:
        ...     _ = double(2)
        >>> old = storage.versions(double)["version"][0]
        >>> [storage.unwrap(call.inputs["x"]) for call in storage.drop_version(double, old[:8])]
        [1]
        """
        self.commit()
        name = stored_op_name(op, self.reader, "drop_version")
        chosen = pick_version(self._store.op_version_rows(name), version, name)["version"]
        return self.drop_calls([c for c in self.reader.calls_of_op(name) if c.version == chosen],
                               delete_dependents=delete_dependents)

    def mark_compatible(self, op: VersionedOp | str, from_version: str | None = None) -> int:
        """Declare that the op's current code computes what an earlier version did.

        The calls of that version (the most recently used one, or
        ``from_version``) are carried over to the current version, so they are
        hits again; returns how many. Only do this for a change that cannot
        alter results: memostore takes your word for it.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> @op
        ... def double(x):  # new code, same results
        ...     return x + x
        >>> storage.explain(double, 1).hit
        False
        >>> storage.mark_compatible(double)
        1
        >>> storage.explain(double, 1).hit
        True
        """
        return mark_compatible(self, named_op(op, self.reader, "mark_compatible", need_live=True), from_version)

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Copy this store, as it is now, to a new SQLite file at ``path`` (its blobs to ``<path>-blobs``),
        creating its folder if missing.

        Other processes may go on writing: the copy is consistent (SQLite's
        online backup API), where copying the file of a store in WAL mode can
        lose its latest writes. Open the copy with ``Storage(db_path=path)``.
        Stores on PostgreSQL refuse (use ``pg_dump``). Returns the path.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> import os, tempfile
        >>> with storage:
        ...     _ = double(1)
        >>> path = storage.backup(os.path.join(tempfile.mkdtemp(), "copy.db"))
        >>> copy = Storage(db_path=path)
        >>> len(copy.calls_of("double"))
        1
        >>> copy.close()
        """
        self.commit()
        target = Path(path)
        if target.is_dir():
            raise StoreLocationError(f"cannot back up to {str(target)!r}: it is a folder; give the path of a new "
                                     f"file in it, e.g. {str(target / 'backup.db')!r}")
        if target.exists():
            raise StoreLocationError(f"cannot back up to {str(target)!r}: the file exists; choose a new path")
        _make_folder(target.resolve().parent, target)
        check_writable_dir(target.resolve().parent, f"the backup {str(target)!r}")
        blob_cids = self._store.backup(target)
        if self._blobs is not None and blob_cids:
            copies = FileBlobStore(str(target) + BLOB_DIR_SUFFIX)
            for cid in blob_cids:
                copies.put(cid, self._blobs.get(cid))
        return target

    def cleanup_refs(self, grace_s: float = ORPHAN_FILE_GRACE_S) -> dict[str, int]:
        """Delete refs and values no stored call uses, and their blob files.

        Also removes files in the blob directory that no value names (blobs of
        values deleted by hand, temporary files of killed writers) once they
        are older than ``grace_s`` seconds. Safe while other processes use the
        store: see ``drop_calls``. Returns how many refs, values and such
        files were deleted, and the bytes freed.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> _ = storage.drop_calls(storage.calls_of(double))
        >>> storage.cleanup_refs()
        {'refs': 2, 'values': 2, 'files': 0, 'bytes': ...}
        """
        self.commit()
        shared = self.config.db_path is not None or self.config.db_url is not None
        return self._buffer.collect(grace_s, announce=shared)

    def check(self, repair: bool = False) -> CheckReport:
        """Verify the whole store: the database's integrity, every value and blob, dangling edges, orphan files.

        With ``repair=True``, calls whose values are damaged or missing are
        dropped (with their dependents) and the values reclaimed, so running
        them again recomputes and re-stores them. Returns a ``CheckReport``.

        >>> from memostore import Storage
        >>> Storage().check().ok
        True
        """
        self.commit()
        return check_store(self._store, self._buffer, self._blobs, self.config.db_path, repair,
                           lambda hids: self.drop_calls(hids), self.cleanup_refs)

    def vacuum(self) -> None:
        """Compact the database after deletions (``drop_calls`` then ``cleanup_refs``).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> _ = storage.drop_calls(storage.calls_of(double))
        >>> _ = storage.cleanup_refs()
        >>> storage.vacuum()
        >>> storage
        Storage(in memory, ops=..., calls=0, values=0, bytes=0 B)
        """
        self.commit()
        self._store.vacuum()


def _make_folder(folder: Path, target: Path) -> None:
    """Create a backup's folder, as ``storage.report`` does: a copy goes where it is asked to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreLocationError(f"cannot back up to {str(target)!r}: cannot create its folder {str(folder)!r} "
                                 f"({err.strerror or err}); choose a path in a folder you can write to") from err


def call_hids_of(calls: Any) -> list[str]:
    """Call hids from Calls, hid strings, or an iterable (a DataFrame column) of them, in order, once each."""
    _check_not_a_table(calls)
    items = [calls] if isinstance(calls, (Call, str)) else list(calls)
    hids: dict[str, None] = {}
    for item in items:
        if isinstance(item, Call):
            hids[item.hid] = None
        elif isinstance(item, str):
            hids[item] = None
        elif item is not None and item == item:  # skip None and NaN (missing cells)
            raise StorageOptionError(f"drop_calls takes Calls or call hids (or a DataFrame column of them), "
                                     f"got {item!r} ({type(item).__name__})")
    return list(hids)


def _check_not_a_table(calls: Any) -> None:
    """A whole DataFrame or frame is no list of calls: iterating a DataFrame gives its column names."""
    if hasattr(calls, "calls_by_op"):  # a ComputationFrame
        nodes = sorted(calls.ops)
        raise StorageOptionError(f"drop_calls takes Calls or call hids, got a ComputationFrame; pass the calls of one "
                                 f"of its op nodes, e.g. cf.ops[{(nodes or ['op'])[0]!r}] (op nodes: {nodes})")
    if hasattr(calls, "columns") and hasattr(calls, "iloc") and getattr(calls, "ndim", 1) == 2:  # a DataFrame
        holding = [str(name) for name in calls.columns if any(isinstance(v, Call) for v in calls[name])]
        example = repr(holding[0]) if holding else "'op'"
        raise StorageOptionError(f"drop_calls takes Calls or call hids, got a whole DataFrame (its column names are "
                                 f"no calls); pass a column of Calls, e.g. df[{example}] (columns of Calls: "
                                 f"{holding}), or cf.ops[name] of the frame it came from")
