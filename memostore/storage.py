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
from typing import Any, Iterable, Literal, Sequence

from memostore.backends.base import BlobStore
from memostore.backends.blobs import FileBlobStore
from memostore.backends.database import Database
from memostore.backends.migrations import upgrade
from memostore.backends.sql import SqlMetadataStore
from memostore.backends.sqlite_files import check_sqlite_file
from memostore.buffer import CallBuffer
from memostore.callpath import CallPath, RunReport, VersionedOp, defined_ops, forget_blocks, named_op, note_block
from memostore.canonical import bytecode_note
from memostore.checking import CheckReport, check_store
from memostore.deps import Roots, discover
from memostore.errors import MemostoreError, NotStoredError, StoreLocationError
from memostore.history import Explanation, carry_over_former, explain, lineage, mark_compatible
from memostore.model import Call, Ref, call_hids_of, lazy_refs, map_refs
from memostore.notebook import storage_html
from memostore.reader import FlushingReader
from memostore.reports import (
    diff_versions,
    hide_password,
    human_bytes,
    ops_table,
    pick_version,
    version_source,
    versions_table,
)

logger = logging.getLogger(__name__)

DEFAULT_BLOB_THRESHOLD_BYTES = 2**20
DEFAULT_CLAIM_TTL_S = 60.0
ORPHAN_FILE_GRACE_S = 3600.0  # a blob file no value names is removed once this old
BLOB_DIR_SUFFIX = "-blobs"

_current: contextvars.ContextVar[Storage | None] = contextvars.ContextVar(
    "memostore_current_storage", default=None
)


def current_storage() -> Storage | None:
    """The storage of the innermost ``with storage:`` block, or None."""
    return _current.get()


def _leave_blocks_after_fork() -> None:
    # A forked worker starts outside its parent's blocks, which commit in the parent, not here.
    _current.set(None)
    forget_blocks()


os.register_at_fork(after_in_child=_leave_blocks_after_fork)


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

    Use it as ``with storage:`` around op calls. Give ``db_path`` or ``db_url``,
    or neither for a store in memory, for this process only:

    - ``db_path`` (default ``None``): a SQLite file, created if missing; large
      values go to files in ``<db_path>-blobs/``. Processes on one machine may share it.
    - ``db_url`` (default ``None``): a SQLAlchemy URL, e.g.
      ``"postgresql+psycopg://user@host/db"``, for a store a team or a cluster shares.
    - ``blob_dir`` (default ``None``): where values over the threshold go, as files
      named by their content: beside ``db_path`` by default; with ``db_url``,
      nowhere (values stay in the database) unless given, mounted alike on every machine.
    - ``blob_threshold_bytes`` (default ``1048576``, 1 MiB): larger values go to blob files.
    - ``allow_pickle`` (default ``True``): ``False`` refuses to unpickle (``UntrustedValueError``).
    - ``claim_ttl_s`` (default ``60.0``): how long a call claimed by a ``map``
      that died stays claimed before another map computes it.
    - ``deps_path`` (default ``None``): ``"__main__"``, a package directory, module
      names, or a list of them; op versions then also cover the helpers,
      classes and constants that ops reach inside it.
    - ``create`` (default ``True``): ``False`` opens an existing ``db_path`` store or
      fails (for read-only tools, and to catch a mistyped path); a ``db_path`` that is
      another application's SQLite database is refused unless ``create="alongside"``.

    ``storage.last_run`` says what the last outermost block (or ``map``)
    computed, found stored and saw fail, when it started and how long it took.

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
        create: bool | Literal["alongside"] = True,
    ) -> None:
        if db_path is not None and db_url is not None:
            raise ValueError("Storage takes db_path or db_url, not both")
        if db_path is not None:
            check_sqlite_file(os.fspath(db_path), create)
        self.config = StorageConfig(
            db_path=_resolved(db_path),
            db_url=db_url,
            blob_dir=_resolved(blob_dir),
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
        config = dataclasses.replace(config, db_path=_resolved(config.db_path), blob_dir=_resolved(config.blob_dir))
        storage.__setstate__({"config": config})
        return storage

    def _open(self) -> None:
        config = self.config
        if config.db_path is not None:
            _check_writable_dir(Path(config.db_path).resolve().parent, config.db_path)
        # A store this storage creates holds no calls of memostore 0.1's versions to carry over.
        self._new_store = config.db_url is None and (config.db_path is None or not os.path.exists(config.db_path))
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
        self._buffer = CallBuffer(self._store, blobs, config.blob_threshold_bytes, config.allow_pickle)
        self.reader = FlushingReader(self._store, self._buffer)
        self.call_path = CallPath(self._buffer, self._store, config.claim_ttl_s,
                                  shared=config.db_path is not None or config.db_url is not None)
        self.last_run: RunReport | None = None  # what the last outermost block or map computed and found
        self._roots = None if config.deps_path is None else Roots(config.deps_path)
        # op -> (generation, version, source, dependencies JSON); recomputed once per outermost block.
        self._op_versions: weakref.WeakKeyDictionary[Any, tuple[int, str, str | None, str | None]] = \
            weakref.WeakKeyDictionary()
        # (op name, version) -> the stored versions that are the same code under memostore 0.1's formula.
        self._former: dict[tuple[str, str], frozenset[str]] = {}
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
            self.call_path.start_run()
            note_block(self, opened=True)
        tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        tokens = self._blocks.tokens
        token = tokens.pop()
        try:
            self.commit()
        finally:
            _current.reset(token)
            if not tokens:
                note_block(self, opened=False)
                self.last_run = self.call_path.finish_run()

    def commit(self) -> None:
        """Write every pending call now (leaving a ``with`` block does this)."""
        self._buffer.flush()

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
            self.call_path.check_op(op.name, op.module, op.qualname, op.explicit_name)
            cached = self._versioned(op)
            self._op_versions[op] = cached
        self._buffer.note_version(op.name, cached[1], cached[2], cached[3], op.module, op.qualname)
        return cached[1]

    def _versioned(self, op: VersionedOp) -> tuple[int, str, str | None, str | None]:
        dependencies = [] if self._roots is None else discover(op.func, self._roots)
        version = op.version if self._roots is None else op.version_with(dependencies)
        if (op.name, version) not in self._former and not self._new_store:
            stored = self._store.op_version_rows(op.name)
            # The former formula also counted module attributes such as __file__.
            former_dependencies = [] if self._roots is None else discover(op.func, self._roots, former=True)
            self._former[(op.name, version)] = carry_over_former(self, op, version, former_dependencies, stored)
        # Code without source is versioned by its bytecode: record which Python compiled it.
        source = op.source if op.source is not None or op.version_pinned else bytecode_note()
        return self._generation, version, source, None if self._roots is None else json.dumps(
            [{"name": d.name, "kind": d.kind, "source": d.source} for d in dependencies])

    # --- values -------------------------------------------------------------

    def unwrap(self, obj: Any) -> Any:
        """The plain value behind a Ref, recursively through lists, tuples, dicts.

        Lazy refs are loaded in one batch and keep their value afterwards.

        >>> storage = Storage()
        >>> storage.unwrap([Ref("c" * 32, "h" * 32, 1), {"k": 2}])
        [1, {'k': 2}]
        """
        self._load_into(lazy_refs(obj))
        return map_refs(obj, lambda ref: ref.value)

    def attach(self, obj: Any, inplace: bool = False) -> Any:
        """Load the values of lazy refs in ``obj``.

        Returns ``obj`` with every Ref in memory: the same refs when
        ``inplace``, else copies (the refs passed in stay as they were).
        """
        if inplace:
            self._load_into(lazy_refs(obj))
            return obj
        copies = map_refs(obj, lambda ref: ref.attached(ref.value) if ref.in_memory else ref.detached())
        self._load_into(lazy_refs(copies))
        return copies

    def _load_into(self, refs: list[Ref]) -> None:
        if not refs:
            return
        values = self._buffer.load_values(ref.cid for ref in refs)
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

        if isinstance(source, str):
            named_op(source, self.reader, "cf", need_live=False)  # a typo raises instead of an empty frame
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
        maps unless ``retry_failed``). The list also tells how many items were
        ``.computed``, ``.hits`` and ``.failed``.
        """
        from memostore.parallel import map_calls

        return map_calls(self, op, items, executor, n_jobs, on_error, progress, retry_failed)  # type: ignore[arg-type]

    def failures(self, op: VersionedOp | str) -> Any:
        """A DataFrame of the stored failed calls of ``op`` (or its stored name):
        the call, its argument values (loaded in one batch), and the error's
        type, message and traceback."""
        import pandas as pd

        found = named_op(op, self.reader, "failures", need_live=False)
        name = found if isinstance(found, str) else found.name
        calls = [c for c in self.reader.calls_of_op(name) if c.status == "failed"]
        arguments = self.unwrap([dict(c.inputs) for c in calls])
        rows = [{"call": c, **values, "error_type": c.error.type if c.error else None,
                 "error_message": c.error.message if c.error else None,
                 "traceback": c.error.traceback if c.error else None,
                 "started_at": pd.to_datetime(c.started_at, unit="s", utc=True)}
                for c, values in zip(calls, arguments, strict=True)]
        return pd.DataFrame(rows)

    def drop_calls(self, calls: Any, delete_dependents: bool = True) -> list[Call]:
        """Delete calls (Calls, call hids, or a ``cf.df()`` column of Calls).

        With ``delete_dependents``, every call downstream of a dropped call's
        outputs goes too. All are deleted in one transaction; returns the
        dropped calls. Their values stay until ``cleanup_refs()``.

        Other processes may keep using the store meanwhile: they stop serving
        dropped calls from their caches within CACHE_RECHECK_S, and no value,
        ref or blob that a call committed by any process (before, during or
        after the cleanup) names is ever deleted.
        """
        self.commit()
        hids = call_hids_of(calls)
        dropped = self._store.calls_by_hids(hids)
        if len(dropped) < len(hids):
            missing = sorted(hids - {call.hid for call in dropped})
            raise NotStoredError(f"drop_calls: {len(missing)} of {len(hids)} calls are not stored "
                                 f"(hids {missing[:3]}{' ...' if len(missing) > 3 else ''}); nothing was dropped")
        if delete_dependents:
            dropped = self._with_downstream(dropped)
        self._store.delete_calls(call.hid for call in dropped)
        self._buffer.forget(call.hid for call in dropped)
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

    def drop_stale(self, op: VersionedOp | str, delete_dependents: bool = True) -> list[Call]:
        """Drop every stored call of ``op`` (or its name) whose version is not its current one."""
        stale = self._stale_calls_of(named_op(op, self.reader, "drop_stale", need_live=True))
        return self.drop_calls(stale, delete_dependents=delete_dependents) if stale else []

    def _stale_calls_of(self, op: VersionedOp) -> list[Call]:
        # The current version as this storage computes it (with deps_path, not op.version).
        current = self.version_of(op, refresh=True)
        same_code = {current, *self._former.get((op.name, current), ())}
        return [c for c in self.reader.calls_of_op(op.name) if c.version not in same_code]

    def explain(self, op: VersionedOp | str, *args: Any, **kwargs: Any) -> Explanation:
        """Whether ``op(*args, **kwargs)`` would be a hit, without running anything.

        On a miss, names the nearest stored call and what differs: an
        argument's contents, the op's version (with the source diff), or an
        argument added without ``NewArgDefault``. ``print()`` it to read it.
        """
        return explain(self, named_op(op, self.reader, "explain", need_live=True), args, kwargs)

    def lineage(self, ref: Ref) -> Any:
        """The calls and code versions behind ``ref``, as a tree: one row per ref, its inputs under it.

        A DataFrame (depth, parent: the row of the ref this one went into,
        ref, cid, via: the argument, op, version, output, call, value and
        passed_in: a value passed by hand, repeated: a call shown above) that
        prints as an indented tree, depth first.
        """
        return lineage(self, ref)

    def mark_compatible(self, op: VersionedOp | str, from_version: str | None = None) -> int:
        """Declare that the op's current code computes what an earlier version did.

        The calls of that version (the most recently used one, or
        ``from_version``) are carried over to the current version, so they are
        hits again; returns how many. Only do this for a change that cannot
        alter results: memostore takes your word for it.
        """
        return mark_compatible(self, named_op(op, self.reader, "mark_compatible", need_live=True), from_version)

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

    def cleanup_refs(self, grace_s: float = ORPHAN_FILE_GRACE_S) -> dict[str, int]:
        """Delete refs and values no stored call uses, and their blob files.

        Also removes files in the blob directory that no value names (blobs of
        values deleted by hand, temporary files of killed writers) once they
        are older than ``grace_s`` seconds. Safe while other processes use the
        store: see ``drop_calls``. Returns how many refs, values and such
        files were deleted, and the bytes freed.
        """
        self.commit()
        shared = self.config.db_path is not None or self.config.db_url is not None
        return self._buffer.collect(grace_s, announce=shared)

    def check(self, repair: bool = False) -> CheckReport:
        """Verify the whole store: the database's integrity, every value and blob, dangling edges, orphan files.

        With ``repair=True``, calls whose values are damaged or missing are
        dropped (with their dependents) and the values reclaimed, so running
        them again recomputes and re-stores them. Returns a ``CheckReport``.

        >>> Storage().check().ok
        True
        """
        self.commit()
        return check_store(self._store, self._buffer, self._blobs, self.config.db_path, repair,
                           lambda hids: self.drop_calls(hids), self.cleanup_refs)

    def versions(self, op: VersionedOp | str) -> Any:
        """A DataFrame with one row per stored version of ``op`` (an op or its stored name).

        Columns: ``version``, ``calls``, ``first_used``, ``last_used``
        (timestamps, UTC), ``is_current`` (the version this process runs; False
        throughout when given a name) and ``dependencies`` (the helpers,
        classes and constants it covered).
        """
        self.commit()
        found = named_op(op, self.reader, "versions", need_live=False)
        if isinstance(found, str):  # stored, not defined here: no version is current
            return versions_table(self._store.op_version_rows(found), "")
        return versions_table(self._store.op_version_rows(found.name), self.version_of(found, refresh=True))

    def diff(self, op: VersionedOp | str, old_version: str, new_version: str) -> str:
        """A unified diff of the op's source and its dependencies between two stored versions.

        ``op`` is an op or its stored name; versions may be given by a unique
        prefix. Shows *why* calls recomputed.
        """
        self.commit()
        found = named_op(op, self.reader, "diff", need_live=False)
        name = found if isinstance(found, str) else found.name
        return diff_versions(self._store.op_version_rows(name), name, old_version, new_version)

    def ops(self) -> Any:
        """A DataFrame with one row per stored op, also of ops whose code is not loaded here.

        Columns: ``op``, ``versions``, ``calls`` (all versions), ``first_used``,
        ``last_used`` (UTC) and ``latest_version`` (the most recently used).

        >>> from memostore import op
        >>> storage = Storage()
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> with storage:
        ...     _ = double(1)
        >>> storage.ops()[["op", "versions", "calls"]]
               op  versions  calls
        0  double         1      1
        """
        self.commit()
        return ops_table({name: self._store.op_version_rows(name) for name in self._store.op_names()})

    def source(self, op: VersionedOp | str, version: str | None = None) -> str:
        """The stored source of a version of ``op`` (an op or its stored name).

        ``version`` is a version id or a unique prefix of one; by default the
        op's current version, or for a name the most recently used version.
        """
        self.commit()
        name = op if isinstance(op, str) else op.name
        if version is None and not isinstance(op, str):
            version = self.version_of(op, refresh=True)
        return version_source(self._store.op_version_rows(name), name, version)

    def source_history(self, op: VersionedOp | str) -> Any:
        """Every stored version of ``op`` (an op or its stored name) with its source, oldest first.

        A DataFrame with ``version``, ``first_used``, ``last_used``, ``calls`` and ``source``.
        """
        self.commit()
        name = op if isinstance(op, str) else op.name
        rows = self._store.op_version_rows(name)
        if not rows:
            raise NotStoredError(f"op {name!r} has no stored version")
        table = versions_table(rows, None)[["version", "first_used", "last_used", "calls"]]
        table["source"] = [row["source"] for row in rows]
        return table

    def drop_version(self, op: VersionedOp | str, version: str, delete_dependents: bool = True) -> list[Call]:
        """Drop every stored call of one version of ``op`` (a version id or a unique prefix).

        Returns the dropped calls; with ``delete_dependents`` the calls computed
        from their outputs go too, as in ``drop_calls``.
        """
        self.commit()
        name = op if isinstance(op, str) else op.name
        chosen = pick_version(self._store.op_version_rows(name), version, name)["version"]
        return self.drop_calls([c for c in self.reader.calls_of_op(name) if c.version == chosen],
                               delete_dependents=delete_dependents)

    def vacuum(self) -> None:
        """Compact the database after deletions (``drop_calls`` then ``cleanup_refs``)."""
        self.commit()
        self._store.vacuum()

    def stale_calls(self, op: VersionedOp | str | None = None) -> list[Call]:
        """Stored calls of ``op`` (default: every op defined in this process)
        whose version is not the current one.

        Drop them, with everything computed from them, with
        ``storage.drop_calls(storage.stale_calls())``.
        """
        if op is not None:
            return self._stale_calls_of(named_op(op, self.reader, "stale_calls", need_live=True))
        return [call for op_ in defined_ops(self.reader) for call in self._stale_calls_of(op_)]

    def get_call(self, hid: str) -> Call:
        """The stored call with history id ``hid``; raises NotStoredError if none."""
        calls = self.reader.calls_by_hids([hid])
        if not calls:
            raise NotStoredError(f"no call with hid {hid!r} is stored; storage.cf(op) lists an op's calls")
        return calls[0]

    def calls_of(self, op: VersionedOp | str) -> list[Call]:
        """Every stored call of ``op`` (an op or its stored name), all versions, newest first."""
        calls = self.reader.calls_of_op(op if isinstance(op, str) else op.name)
        return sorted(calls, key=lambda call: call.started_at, reverse=True)

    def __repr__(self) -> str:
        counts = self._store.counts()
        pending = self._buffer.pending_calls
        pending_text = f", pending={pending}" if pending else ""
        return (f"Storage({self._where()}, ops={counts['ops']}, calls={counts['calls']}, "
                f"values={counts['values']}, bytes={human_bytes(counts['bytes'])}{pending_text})")

    def _where(self) -> str:
        path, url = self.config.db_path, self.config.db_url
        return (f"db_path={path!r}" if path is not None
                else "in memory" if url is None else f"db_url={hide_password(url)!r}")

    def _repr_html_(self) -> str:
        self.commit()
        counts = self._store.counts()
        op_calls = {name: self._store.op_call_count(name) for name in self._store.op_names()}
        return storage_html(self._where(), {**counts, "bytes": human_bytes(counts["bytes"])}, op_calls,
                            self._buffer.pending_calls)


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


def _resolved(path: str | os.PathLike[str] | None) -> str | None:
    """``path`` made absolute with symlinks followed, once, when the storage is made:
    a later ``os.chdir`` or a symlink must not move the store (or its blobs) for
    this process or for the workers it sends the configuration to."""
    return None if path is None else str(Path(os.fspath(path)).resolve())


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
