"""``Storage``: where calls are remembered, and the facade users talk to.

``with storage:`` makes a storage the current one for ``@op`` calls in this
thread or task (a ContextVar, so threads and asyncio tasks do not see each
other's blocks). Leaving the block flushes every pending call, also when the
block raised: finished work is never lost.

Trust: numpy arrays and plain Python data load without pickle. Other values
are stored with cloudpickle, and loading a pickle can run code; a storage
opened with ``allow_pickle=False`` refuses to load them (UntrustedValueError).
Open stores written by others that way unless you trust them.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from memostore.backends.base import BlobStore, ClaimStore
from memostore.backends.blobs import FileBlobStore
from memostore.backends.database import Database
from memostore.backends.migrations import upgrade
from memostore.backends.sql import SqlMetadataStore
from memostore.buffer import CallBuffer
from memostore.deps import Dependency, Roots, discover
from memostore.history import Explanation, explain, lineage, mark_compatible
from memostore.reader import FlushingReader
from memostore.errors import MemostoreError, NotStoredError, StoreLocationError
from memostore.model import Call, Ref
from memostore.reports import diff_versions, hide_password, human_bytes, versions_table
from memostore.versioning import current_ops

logger = logging.getLogger(__name__)

DEFAULT_BLOB_THRESHOLD_BYTES = 2**20
DEFAULT_CLAIM_TTL_S = 60.0
BLOB_DIR_SUFFIX = "-blobs"

_current: contextvars.ContextVar[Storage | None] = contextvars.ContextVar(
    "memostore_current_storage", default=None
)


def current_storage() -> Storage | None:
    """The storage of the innermost ``with storage:`` block, or None."""
    return _current.get()


class VersionedOp(Protocol):
    """What a storage needs of an op to version it."""

    name: str
    version: str
    source: str | None
    func: Any

    def version_with(self, dependencies: Sequence[Dependency]) -> str: ...


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """Everything needed to reopen a storage: what a Storage pickles to."""

    db_path: str | None = None
    db_url: str | None = None
    blob_dir: str | None = None
    blob_threshold_bytes: int = DEFAULT_BLOB_THRESHOLD_BYTES
    allow_pickle: bool = True
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S
    deps_path: tuple[str, ...] | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the metadata store."""
        if self.db_url is not None:
            return self.db_url
        if self.db_path is not None:
            return "sqlite:///" + str(Path(self.db_path).resolve())
        return "sqlite://"

    @property
    def blob_root(self) -> str | None:
        """The blob directory: given, or beside the db file; None in memory."""
        if self.blob_dir is not None:
            return self.blob_dir
        if self.db_path is not None:
            return str(self.db_path) + BLOB_DIR_SUFFIX
        return None


class Storage:
    """A store of calls: in memory, in a SQLite file, or in a database server.

    ``claim_ttl_s`` is how long a call claimed by a ``map`` that died stays
    claimed before another map computes it (live maps renew their claims).
    ``deps_path`` (``"__main__"``, a package directory, module names, or a
    list of them) makes op versions also cover the helpers, classes and
    constants that ops reach inside it.

    >>> storage = Storage()
    >>> storage
    Storage(in memory, ops=0, calls=0, values=0, bytes=0 B)
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        *,
        blob_dir: str | os.PathLike[str] | None = None,
        blob_threshold_bytes: int = DEFAULT_BLOB_THRESHOLD_BYTES,
        allow_pickle: bool = True,
        claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
        deps_path: str | Sequence[str] | None = None,
    ) -> None:
        if db_path is not None and db_url is not None:
            raise ValueError("Storage takes db_path or db_url, not both")
        self.config = StorageConfig(
            db_path=None if db_path is None else os.fspath(db_path),
            db_url=db_url,
            blob_dir=None if blob_dir is None else os.fspath(blob_dir),
            blob_threshold_bytes=blob_threshold_bytes,
            allow_pickle=allow_pickle,
            claim_ttl_s=claim_ttl_s,
            deps_path=None if deps_path is None else (
                (deps_path,) if isinstance(deps_path, str) else tuple(deps_path)),
        )
        self._open()

    @classmethod
    def from_config(cls, config: StorageConfig) -> Storage:
        """A storage opened from a configuration (what a Storage pickles to)."""
        storage = cls.__new__(cls)
        storage.__setstate__({"config": config})
        return storage

    def _open(self) -> None:
        config = self.config
        if config.db_path is not None:
            _check_writable_dir(Path(config.db_path).resolve().parent, config.db_path)
        try:
            self._store = SqlMetadataStore(config.url)
        except MemostoreError:
            raise
        except Exception as err:
            reason = getattr(err, "orig", None) or err
            raise StoreLocationError(
                f"cannot open the store at {hide_password(config.url)!r}: {reason}; "
                "check that the path names a file (not a directory) in a writable place"
            ) from err
        blob_root = config.blob_root
        blobs: BlobStore | None = None if blob_root is None else FileBlobStore(blob_root)
        self._blobs = blobs
        self.buffer = CallBuffer(self._store, blobs, config.blob_threshold_bytes, config.allow_pickle)
        self.reader = FlushingReader(self._store, self.buffer)
        self.claim_store: ClaimStore = self._store
        self._roots = None if config.deps_path is None else Roots(config.deps_path)
        # op -> (generation, version, dependencies JSON); recomputed once per outermost block.
        self._op_versions: weakref.WeakKeyDictionary[Any, tuple[int, str, str | None]] = weakref.WeakKeyDictionary()
        self._generation = 0
        # Each thread enters and leaves its own blocks.
        self._blocks = threading.local()

    # --- pickling: a storage travels as its configuration ------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self._open()

    # --- the block ----------------------------------------------------------

    def __enter__(self) -> Storage:
        tokens = getattr(self._blocks, "tokens", None)
        if tokens is None:
            tokens = self._blocks.tokens = []
        if not tokens:
            self._generation += 1  # code may have changed since the last block: re-check versions
        tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        token = self._blocks.tokens.pop()
        try:
            self.commit()
        finally:
            _current.reset(token)

    def commit(self) -> None:
        """Write every pending call now (leaving a ``with`` block does this)."""
        self.buffer.flush()

    def close(self) -> None:
        """Commit, then release the database connection."""
        self.commit()
        self._store.close()

    # --- versions -----------------------------------------------------------

    def version_of(self, op: VersionedOp, refresh: bool = False) -> str:
        """The version of ``op`` here: with ``deps_path``, it also covers the
        helpers, classes and constants the op reaches. Computed once per op
        and outermost ``with`` block (or when ``refresh``), never per call."""
        cached = self._op_versions.get(op)
        if cached is None or cached[0] != self._generation or refresh:
            if self._roots is None:
                cached = (self._generation, op.version, None)
            else:
                dependencies = discover(op.func, self._roots)
                cached = (self._generation, op.version_with(dependencies), json.dumps(
                    [{"name": d.name, "kind": d.kind, "source": d.source} for d in dependencies]))
            self._op_versions[op] = cached
        self.buffer.note_version(op.name, cached[1], op.source, cached[2])
        return cached[1]

    # --- values -------------------------------------------------------------

    def unwrap(self, obj: Any) -> Any:
        """The plain value behind a Ref, recursively through lists, tuples, dicts.

        Lazy refs are loaded in one batch and keep their value afterwards.

        >>> storage = Storage()
        >>> storage.unwrap([Ref("c" * 32, "h" * 32, 1), {"k": 2}])
        [1, {'k': 2}]
        """
        self._load_into(_lazy_refs(obj))
        return _map_refs(obj, lambda ref: ref.value)

    def attach(self, obj: Any, inplace: bool = False) -> Any:
        """Load the values of lazy refs in ``obj``.

        Returns ``obj`` with every Ref in memory: the same refs when
        ``inplace``, else copies (the refs passed in stay as they were).
        """
        if inplace:
            self._load_into(_lazy_refs(obj))
            return obj
        copies = _map_refs(obj, lambda ref: ref.attached(ref.value) if ref.in_memory else ref.detached())
        self._load_into(_lazy_refs(copies))
        return copies

    def _load_into(self, refs: list[Ref]) -> None:
        if not refs:
            return
        values = self.buffer.load_values(ref.cid for ref in refs)
        for ref in refs:
            ref.attach_inplace(values[ref.cid])

    def load_ref(self, hid: str, in_memory: bool = False) -> Ref:
        """The stored ref with history id ``hid``; raises NotStoredError if none."""
        self.commit()
        cid = self._store.ref_cids([hid]).get(hid)
        if cid is None:
            raise NotStoredError(f"no ref with hid {hid} is stored")
        ref = Ref(cid, hid)
        if in_memory:
            self._load_into([ref])
        return ref

    # --- calls --------------------------------------------------------------

    def get_ref_creator(self, ref: Ref) -> Call | None:
        """The call that produced ``ref``, or None for a value passed in by hand."""
        self.commit()
        calls = self._store.calls_of_refs([ref.hid], "out")
        return calls[0] if calls else None

    def get_consumers(self, ref: Ref) -> list[Call]:
        """Every stored call that took ``ref`` as an input."""
        self.commit()
        return self._store.calls_of_refs([ref.hid], "in")

    def cf(self, source: Any) -> Any:
        """A ComputationFrame of ``source``: an op, a Ref, a Call, or a list of them.

        From an op, the frame holds every stored call of it, all versions.
        """
        from memostore.cf import ComputationFrame

        return ComputationFrame.from_source(source, self.reader)

    def map(self, op: Any, items: Iterable[Any], executor: Any = None, n_jobs: int | None = None,
            on_error: str = "raise", progress: bool = True, retry_failed: bool = False) -> list[Any]:
        """Call ``op`` once per item (a dict of keyword arguments); returns Refs in item order.

        Stored calls are found in one batched lookup; only the others run, on
        ``executor``: None (here), ``"threads"``, ``"processes"``, any
        ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
        Results are committed as they arrive, so a killed run keeps what
        finished. ``on_error``: ``"raise"`` (commit, then raise the first
        error), ``"skip"`` (None in its place) or ``"record"`` (store the
        failed call with its error, None in its place, not retried by later
        maps unless ``retry_failed``).
        """
        from memostore.parallel import map_calls

        return map_calls(self, op, items, executor, n_jobs, on_error, progress, retry_failed)  # type: ignore[arg-type]

    def failures(self, op: VersionedOp) -> Any:
        """A DataFrame of the stored failed calls of ``op``: the call, its
        argument values (loaded in one batch), and the error's type, message
        and traceback."""
        import pandas as pd

        calls = [c for c in self.reader.calls_of_op(op.name) if c.status == "failed"]
        arguments = self.unwrap([dict(c.inputs) for c in calls])
        rows = [{"call": c, **values, "error_type": c.error.type if c.error else None,
                 "error_message": c.error.message if c.error else None,
                 "traceback": c.error.traceback if c.error else None,
                 "started_at": pd.to_datetime(c.started_at, unit="s", utc=True)}
                for c, values in zip(calls, arguments)]
        return pd.DataFrame(rows)

    def drop_calls(self, calls: Any, delete_dependents: bool = True) -> list[Call]:
        """Delete calls (Calls, call hids, or a ``cf.df()`` column of Calls).

        With ``delete_dependents``, every call downstream of a dropped call's
        outputs goes too. All are deleted in one transaction; returns the
        dropped calls. Their values stay until ``cleanup_refs()``.
        """
        self.commit()
        dropped = self._store.calls_by_hids(_call_hids(calls))
        if delete_dependents:
            dropped = self._with_downstream(dropped)
        self._store.delete_calls(call.hid for call in dropped)
        self.buffer.forget(call.hid for call in dropped)
        logger.info("dropped %d calls", len(dropped))
        return dropped

    def _with_downstream(self, calls: list[Call]) -> list[Call]:
        """These calls and every stored call downstream of their outputs, each fetched once."""
        found = {call.hid for call in calls}
        result, frontier = list(calls), calls
        while frontier:
            outputs = [ref.hid for call in frontier for ref in call.outputs.values()]
            consumers = {edge.call_hid for edge in self._store.edges_of_refs(outputs, "in")} - found
            frontier = self._store.calls_by_hids(consumers)
            found.update(consumers)
            result.extend(frontier)
        return result

    def drop_stale(self, op: VersionedOp, delete_dependents: bool = True) -> list[Call]:
        """Drop every stored call of ``op`` whose version is not its current one."""
        return self.drop_calls(self._stale_calls_of(op), delete_dependents=delete_dependents)

    def _stale_calls_of(self, op: VersionedOp) -> list[Call]:
        # The current version as this storage computes it (with deps_path, not op.version).
        current = self.version_of(op, refresh=True)
        return [c for c in self.reader.calls_of_op(op.name) if c.version != current]

    def explain(self, op: VersionedOp, *args: Any, **kwargs: Any) -> Explanation:
        """Whether ``op(*args, **kwargs)`` would be a hit, without running anything.

        On a miss, names the nearest stored call and what differs: an
        argument's contents, the op's version (with the source diff), or an
        argument added without ``NewArgDefault``. ``print()`` it to read it.
        """
        return explain(self, op, args, kwargs)

    def lineage(self, ref: Ref) -> Any:
        """The calls and code versions behind ``ref``, one row per step back.

        A DataFrame (depth, ref, via, op, version, output, call) that prints as a tree.
        """
        return lineage(self, ref)

    def mark_compatible(self, op: VersionedOp, from_version: str | None = None) -> int:
        """Declare that the op's current code computes what an earlier version did.

        The calls of that version (the most recently used one, or
        ``from_version``) are carried over to the current version, so they are
        hits again; returns how many. Only do this for a change that cannot
        alter results: memostore takes your word for it.
        """
        return mark_compatible(self, op, from_version)

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """Copy this store, as it is now, to a new SQLite file at ``path`` (its blobs to ``<path>-blobs``).

        Other processes may go on writing: the copy is consistent (SQLite's
        online backup API), where copying the file of a store in WAL mode can
        lose its latest writes. Open the copy with ``Storage(db_path=path)``.
        Stores on PostgreSQL refuse (use ``pg_dump``). Returns the path.
        """
        self.commit()
        target = Path(path)
        if target.exists():
            raise StoreLocationError(f"cannot back up to {str(target)!r}: the file exists; choose a new path")
        _check_writable_dir(target.resolve().parent, str(target))
        blob_cids = self._store.backup(target)
        if self._blobs is not None and blob_cids:
            copies = FileBlobStore(str(target) + BLOB_DIR_SUFFIX)
            for cid in blob_cids:
                copies.put(cid, self._blobs.get(cid))
        return target

    def cleanup_refs(self) -> dict[str, int]:
        """Delete refs and values no stored call uses, and their blob files.

        Returns how many refs and values were deleted and the bytes freed.
        """
        self.commit()
        refs, sizes, blob_cids = self._store.delete_unreferenced()
        if self._blobs is not None:
            self._blobs.delete(blob_cids)
        self.buffer.forget_values(sizes)
        return {"refs": refs, "values": len(sizes), "bytes": sum(sizes.values())}

    def versions(self, op: VersionedOp) -> Any:
        """A DataFrame with one row per stored version of ``op``.

        Columns: ``version``, ``calls``, ``first_used``, ``last_used``
        (timestamps, UTC), ``is_current`` (the version this process runs) and
        ``dependencies`` (the helpers, classes and constants it covered).
        """
        self.commit()
        return versions_table(self._store.op_version_rows(op.name), self.version_of(op, refresh=True))

    def diff(self, op: VersionedOp, old_version: str, new_version: str) -> str:
        """A unified diff of the op's source and its dependencies between two stored versions.

        Versions may be given by a unique prefix. Shows *why* calls recomputed.
        """
        self.commit()
        return diff_versions(self._store.op_version_rows(op.name), op.name, old_version, new_version)

    def stale_calls(self) -> list[Call]:
        """Stored calls of the ops defined in this process whose version is not the current one.

        Drop them, with everything computed from them, with
        ``storage.drop_calls(storage.stale_calls())``.
        """
        return [call for _, op in sorted(current_ops().items()) for call in self._stale_calls_of(op)]

    def __repr__(self) -> str:
        counts = self._store.counts()
        where = "in memory"
        if self.config.db_path is not None:
            where = f"db_path={self.config.db_path!r}"
        elif self.config.db_url is not None:
            where = f"db_url={hide_password(self.config.db_url)!r}"
        pending = self.buffer.pending_calls
        pending_text = f", pending={pending}" if pending else ""
        return (f"Storage({where}, ops={counts['ops']}, calls={counts['calls']}, "
                f"values={counts['values']}, bytes={human_bytes(counts['bytes'])}{pending_text})")


def upgrade_store(db_url: str | None = None, db_path: str | os.PathLike[str] | None = None) -> list[str]:
    """Upgrade a store written by an older memostore to the schema this one reads.

    A SQLite store (``db_path``) is upgraded anyway when first opened, after
    a copy of its file is kept beside it (``runs.db.schema-v1.bak``). A
    PostgreSQL store (``db_url``) is upgraded only this way (or by
    ``memostore upgrade URL``): back it up first, and stop older releases
    from using it. Returns the migrations applied (none if it was current).
    """
    if (db_url is None) == (db_path is None):
        raise ValueError("upgrade_store takes db_url or db_path (one of them)")
    database = Database(StorageConfig(db_path=None if db_path is None else os.fspath(db_path), db_url=db_url).url)
    try:
        return upgrade(database)
    finally:
        database.close()


def _call_hids(calls: Any) -> set[str]:
    """Call hids from Calls, hid strings, or an iterable (a DataFrame column) of them."""
    items = [calls] if isinstance(calls, (Call, str)) else list(calls)
    hids = set()
    for item in items:
        if isinstance(item, Call):
            hids.add(item.hid)
        elif isinstance(item, str):
            hids.add(item)
        elif item is not None and item == item:  # skip None and NaN (missing cells)
            raise TypeError(f"drop_calls takes Calls or call hids, got {item!r}")
    return hids


def _lazy_refs(obj: Any) -> list[Ref]:
    found: list[Ref] = []
    _map_refs(obj, lambda ref: found.append(ref) if not ref.in_memory else None)
    return found


def _map_refs(obj: Any, on_ref: Any) -> Any:
    """``obj`` with each Ref replaced by ``on_ref(ref)``, through containers."""
    if isinstance(obj, Ref):
        return on_ref(obj)
    kind = type(obj)
    if kind is list:
        return [_map_refs(item, on_ref) for item in obj]
    if kind is tuple:
        return tuple(_map_refs(item, on_ref) for item in obj)
    if kind is dict:
        return {key: _map_refs(value, on_ref) for key, value in obj.items()}
    return obj


def _check_writable_dir(directory: Path, db_path: str) -> None:
    if not directory.is_dir():
        raise StoreLocationError(
            f"cannot create the store db_path={db_path!r}: the directory {str(directory)!r} "
            "does not exist; create it first or choose another path"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreLocationError(
            f"cannot write the store db_path={db_path!r}: the directory {str(directory)!r} "
            "is not writable; fix its permissions or choose another path"
        )
