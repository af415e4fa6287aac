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

import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import threading
import weakref
from typing import Any, Iterable, Iterator, Literal, Sequence

from memostore.backends.base import BlobStore
from memostore.backends.connections import server_address, server_message
from memostore.backends.database import Database
from memostore.backends.migrations import upgrade
from memostore.backends.object_blobs import open_blob_store
from memostore.backends.sql import SqlMetadataStore
from memostore.backends.sqlite_files import check_sqlite_file
from memostore.buffer import CallBuffer
from memostore.caching import Caching
from memostore.callpath import CallPath, RunReport, VersionedOp, forget_blocks, named_op, note_block
from memostore.canonical import bytecode_note
from memostore.config import (
    DEFAULT_CLAIM_TTL_S,
    DEFAULT_RETRY_S,
    StorageConfig,
    blob_options,
    check_path_options,
    check_store_path,
    deps_roots,
    resolved_path,
)
from memostore.deps import Roots, captured_by, discover
from memostore.errors import (
    FrameArgumentError,
    MemostoreError,
    NotStoredError,
    StaleCodeError,
    StorageOptionError,
    StoreLocationError,
    StoreUnavailableError,
)
from memostore.history import carry_over_former
from memostore.lookups import Lookups
from memostore.model import Ref
from memostore.modes import CallModes, enter_mode, leave_mode
from memostore.notebook import storage_html
from memostore.reader import FlushingReader
from memostore.reports import (
    hide_password,
    human_bytes,
)
from memostore.runs import RunRecorder, Runs, run_spec
from memostore.upkeep import Upkeep

logger = logging.getLogger(__name__)

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


class Storage(Lookups, Upkeep, CallModes, Caching, Runs):
    """A store of calls: in memory, in a SQLite file, or in a database server.

    Use it as ``with storage:`` around op calls. Give ``db_path`` or ``db_url``,
    or neither for a store in memory, for this process only:

    - ``db_path`` (default ``None``): a SQLite file, created if missing; large
      values go to files in ``<db_path>-blobs/``. Processes on one machine may share it.
      ``":memory:"`` means in memory, as in SQLite.
    - ``db_url`` (default ``None``): a SQLAlchemy URL, e.g.
      ``"postgresql+psycopg://user@host/db"``, for a store a team or a cluster shares.
    - ``blob_dir`` (default ``None``): where values over the threshold go, as files
      named by their content: beside ``db_path`` by default; with ``db_url``,
      nowhere (values stay in the database) unless given, mounted alike on every machine.
    - ``blob_threshold_bytes`` (default ``1048576``, 1 MiB): larger values go to blob files.
    - ``overflow_dir``, ``overflow_threshold_MB``: mandala's names of ``blob_dir``
      and of the threshold (in MiB), accepted for code coming from mandala.
    - ``allow_pickle`` (default ``True``): ``False`` refuses to unpickle (``UntrustedValueError``).
    - ``claim_ttl_s`` (default ``60.0``): how long a call claimed by a ``map``
      that died stays claimed before another map computes it.
    - ``deps_path`` (default ``None``): ``"__main__"``, a package directory (a string
      or a ``pathlib.Path``), module names, or a list of them; op versions then also cover the helpers,
      classes and constants that ops reach inside it.
    - ``create`` (default ``True``): ``False`` opens an existing ``db_path`` store or
      fails (for read-only tools, and to catch a mistyped path); a ``db_path`` that is
      another application's SQLite database is refused unless ``create="alongside"``.
    - ``retry_s`` (default ``30.0``): with ``db_url``, how long a lookup or commit
      keeps reconnecting to a server that went away (a restart, a failover) before
      it raises ``StoreUnavailableError``; pending calls stay pending meanwhile.

    ``storage.close()`` commits and gives back its connections (the next use
    reopens one); ``with contextlib.closing(Storage(...)) as storage:`` does
    that at the end, where ``with storage:`` only makes it the current store.

    ``storage.last_run`` says what the last outermost block (or ``map``)
    computed, found stored and saw fail, when it started and how long it took;
    the store keeps every such run (``storage.run(label)``, ``storage.runs()``).

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
        blob_threshold_bytes: int | None = None,
        allow_pickle: bool = True,
        claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
        deps_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        create: bool | Literal["alongside"] = True,
        retry_s: float = DEFAULT_RETRY_S,
        overflow_dir: str | os.PathLike[str] | None = None,
        overflow_threshold_MB: float | None = None,
    ) -> None:
        check_path_options(db_path=db_path, db_url=db_url, blob_dir=blob_dir, overflow_dir=overflow_dir)
        if db_path is not None and os.fspath(db_path) == ":memory:":  # SQLite's (and mandala's) name for it
            db_path = None
        if db_path is not None and db_url is not None:
            raise StorageOptionError("Storage takes db_path or db_url, not both")
        if db_path is not None:
            check_sqlite_file(os.fspath(db_path), create)
        blob_dir, threshold = blob_options(blob_dir, blob_threshold_bytes, overflow_dir, overflow_threshold_MB)
        self.config = StorageConfig(
            db_path=resolved_path(db_path),
            db_url=db_url,
            blob_dir=resolved_path(blob_dir),
            blob_threshold_bytes=threshold,
            allow_pickle=allow_pickle,
            claim_ttl_s=claim_ttl_s,
            deps_path=deps_roots(deps_path),
            retry_s=retry_s,
        )
        self._open()

    @classmethod
    def from_config(cls, config: StorageConfig) -> Storage:
        """A storage opened from a configuration (what a Storage pickles to).

        >>> import os, tempfile
        >>> from memostore import Storage
        >>> storage = Storage(db_path=os.path.join(tempfile.mkdtemp(), "runs.db"))
        >>> again = Storage.from_config(storage.config)
        >>> again.config == storage.config
        True
        >>> storage.close(); again.close()
        """
        storage = cls.__new__(cls)
        config = dataclasses.replace(config, db_path=resolved_path(config.db_path),
                                     blob_dir=resolved_path(config.blob_dir))
        storage.__setstate__({"config": config})
        return storage

    def _open(self) -> None:
        config = self.config
        if config.db_path is not None:
            check_store_path(config.db_path)
        # A store this storage creates holds no calls of memostore 0.1's versions to carry over.
        self._new_store = config.db_url is None and (config.db_path is None or not os.path.exists(config.db_path))
        try:
            self._store = SqlMetadataStore(config.url, config.retry_s, config.idle_close_s)
        except MemostoreError:
            raise
        except Exception as err:
            if config.db_url is not None:
                raise StoreUnavailableError(
                    f"cannot open the store on the server at {server_address(config.url)}: "
                    f"{server_message(err, config.url)}; check that the server runs, that the database "
                    "exists and that it accepts this user (with the password in the URL, in PGPASSWORD "
                    "or in ~/.pgpass)") from err
            reason = getattr(err, "orig", None) or err
            raise StoreLocationError(
                f"cannot open the store at {hide_password(config.url)!r}: {reason}; "
                "check that the path names a file (not a directory) in a writable place"
            ) from err
        blob_root = config.blob_root
        blobs: BlobStore | None = None if blob_root is None else open_blob_store(blob_root)
        self._blobs = blobs
        self._buffer = CallBuffer(self._store, blobs, config.blob_threshold_bytes, config.allow_pickle)
        self.reader = FlushingReader(self._store, self._buffer)
        self.call_path = CallPath(self._buffer, self._store, config.claim_ttl_s,
                                  shared=config.db_path is not None or config.db_url is not None)
        self.last_run: RunReport | None = None  # what the last outermost block or map computed and found
        self._runs = RunRecorder(self._store)
        self._buffer.run_id = self._runs.run_id  # calls committed during a run point at it
        self._roots = None if config.deps_path is None else Roots(config.deps_path)
        # op -> (generation, version, source, dependencies JSON); recomputed once per outermost block.
        self._op_versions: weakref.WeakKeyDictionary[Any, tuple[int, str, str | None, str | None]] = \
            weakref.WeakKeyDictionary()
        # (op name, version) -> the stored versions that are the same code under memostore 0.1's formula.
        self._former: dict[tuple[str, str], frozenset[str]] = {}
        self._generation = 0
        self._hashed_values: dict[int, tuple[Any, str]] = {}  # content ids of values versions read, per block
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
            self._hashed_values = {}
            self._start_run()
            note_block(self, opened=True)
        tokens.append((_current.set(self), enter_mode(None)))  # a block inside storage.noop() memoizes
        return self

    def __exit__(self, *exc_info: Any) -> None:
        tokens = self._blocks.tokens
        token, mode_token = tokens.pop()
        try:
            self.commit()
        finally:
            leave_mode(mode_token)
            _current.reset(token)
            if not tokens:
                note_block(self, opened=False)
                self.last_run = self._finish_run()

    @contextlib.contextmanager
    def _as_current(self) -> Iterator[Storage]:
        """This storage as the current one for op calls (a value recomputed while it loads),
        without a block's run accounting or commit."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def close(self) -> None:
        """Commit, then release every database connection of this process (also when the
        commit fails: its calls stay pending). Closing twice is fine; a later use reopens one.

        >>> import os, tempfile
        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> path = os.path.join(tempfile.mkdtemp(), "runs.db")
        >>> storage = Storage(db_path=path)
        >>> with storage:
        ...     _ = double(1)
        >>> storage.close()
        >>> reopened = Storage(db_path=path, create=False)
        >>> reopened
        Storage(db_path='.../runs.db', ops=1, calls=1, values=2, bytes=...)
        >>> reopened.close()
        """
        try:
            self.commit()
        finally:
            self._store.close()

    # --- versions -----------------------------------------------------------

    def version_of(self, op: VersionedOp | str, refresh: bool = False) -> str:
        """The version of ``op`` here: with ``deps_path``, it also covers the
        helpers, classes and constants the op reaches. Computed once per op
        and outermost ``with`` block (or when ``refresh``), never per call.

        ``op`` may be the name of an op defined in this process. An op only
        stored has no current version: that name raises UnknownOpError
        (``storage.versions(name)`` lists its stored versions).

        >>> from memostore import Storage, op
        >>> @op
        ... def tenfold(x):
        ...     return 10 * x
        >>> storage = Storage()
        >>> version = storage.version_of(tenfold)
        >>> len(version), version == storage.versions(tenfold)["version"][0] == storage.version_of("tenfold")
        (32, True)
        """
        live: VersionedOp = named_op(op, self.reader, "version_of", need_live=True) if isinstance(op, str) else op
        cached = self._op_versions.get(live)
        if cached is None or cached[0] != self._generation or refresh:
            self.call_path.check_op(live.name, live.module, live.qualname, live.explicit_name)
            cached = self._versioned(live)
            self._op_versions[live] = cached
        self._buffer.note_version(live.name, cached[1], cached[2], cached[3], live.module, live.qualname)
        return cached[1]

    def _versioned(self, op: VersionedOp) -> tuple[int, str, str | None, str | None]:
        try:
            # What a closure captured counts with or without deps_path (an op defined inside a function).
            own = captured_by(op)
            dependencies = own if self._roots is None else sorted(
                own + discover(op.func, self._roots, op_name=op.name, hashed=self._hashed_values),
                key=lambda d: d.name)
        except StaleCodeError as err:  # name the op whose version it is
            raise StaleCodeError(f"op {op.name!r} cannot be versioned: {err}") from None
        tracked = self._roots is not None or bool(own)
        version = op.version_with(dependencies) if tracked else op.version
        version = self._store.compatible_version(op.name, version)  # its calls moved there (mark_compatible)
        # Calls memostore 0.1 stored for a closure were shared by every captured value: none carry over.
        if (op.name, version) not in self._former and not self._new_store and not own:
            stored = self._store.op_version_names(op.name)
            # The former formula also counted module attributes such as __file__.
            former_dependencies = [] if self._roots is None else discover(op.func, self._roots, former=True)
            self._former[(op.name, version)] = carry_over_former(self, op, version, former_dependencies, stored)
        # Code without source is versioned by its bytecode: record which Python compiled it.
        source = op.source if op.source is not None or op.version_pinned else bytecode_note()
        return self._generation, version, source, None if not tracked else json.dumps(
            [{"name": d.name, "kind": d.kind, "source": d.source} for d in dependencies])

    def load_ref(self, hid: str, in_memory: bool = False) -> Ref:
        """The stored ref with history id ``hid``; raises NotStoredError if none.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        >>> storage.load_ref(y.hid)
        Ref(hid=..., in_memory=False)
        >>> storage.load_ref(y.hid, in_memory=True).value
        2
        """
        self.commit()
        cid = self._store.ref_cids([hid]).get(hid)
        if cid is None:
            raise NotStoredError(f"no ref with hid {hid} is stored")
        ref = Ref(cid, hid)
        if in_memory:
            self._load_into([ref])
        return ref

    # --- calls --------------------------------------------------------------

    def cf(self, source: Any = None, *, run: Any = None) -> Any:
        """A ComputationFrame of ``source``: an op, a Ref, a Call, a hid, a list mixing them, or
        a dict of named groups of Refs (``{"model": models}``: a variable each).

        From an op, the frame holds every stored call of it, all versions.
        With ``run=`` (a run id, label or ``storage.last_run``) instead, it
        holds the calls that run computed and found stored.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> frame = storage.cf(double)
        >>> frame.df(include_calls=False)
           x  var_0
        0  1      2
        """
        from memostore.cf import ComputationFrame, looks_like_hid

        if (source is None) == (run is None):
            raise FrameArgumentError("storage.cf takes a source (an op, Ref, Call, hid, list or dict of them) "
                                     "or run=..., one of the two")
        if run is not None:
            source = self.run_calls(run)
        items = [source] if isinstance(source, str) else source if isinstance(source, (list, tuple, set)) else ()
        for name in {item for item in items if isinstance(item, str) and not looks_like_hid(item)}:
            named_op(name, self.reader, "cf", need_live=False)  # a typo raises instead of an empty frame
        return ComputationFrame.from_source(source, self.reader)

    def map(self, op: Any, items: Iterable[Any], executor: Any = None, n_jobs: int | None = None,
            on_error: str = "raise", progress: bool = True, retry_failed: bool = False, chunksize: int = 1,
            executor_options: dict[str, Any] | None = None) -> list[Any]:
        """Call ``op`` (or the op defined here under that name) once per item (a dict of keyword arguments);
        returns Refs in item order.

        Stored calls are found in one batched lookup; only the others run, on
        ``executor``: None (here), ``"threads"``, ``"processes"``, any
        ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.
        ``chunksize`` calls go to a process pool or Dask worker as one task
        (fewer round trips for small calls); ``executor_options`` go to Dask
        for every task: ``retries``, ``resources``, ``priority``, ``workers``,
        ``allow_other_workers``, ``fifo_timeout``.
        Results are committed as they arrive, so a killed run keeps what
        finished. ``on_error``: ``"raise"`` (commit, then raise the first
        error), ``"skip"`` (None in its place) or ``"record"`` (store the
        failed call with its error, None in its place, not retried by later
        maps unless ``retry_failed``). The list also tells how many items were
        ``.computed``, ``.hits`` and ``.failed`` (raised now, or recorded failures
        not run again: ``.failed_earlier``), as ``storage.last_run`` does for calls.
        Inside ``storage.noop()`` it calls the plain function per item, here, and
        returns plain values.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> refs = storage.map(double, [{"x": 1}, {"x": 2}], executor="threads", progress=False)
        >>> storage.unwrap(refs), refs.computed, refs.hits
        ([2, 4], 2, 0)
        >>> refs = storage.map(double, [{"x": 1}, {"x": 3}], progress=False)  # executor=None: here
        >>> storage.unwrap(refs), refs.computed, refs.hits
        ([2, 6], 1, 1)
        """
        from memostore.parallel import map_calls

        op = named_op(op, self.reader, "map", need_live=True) if isinstance(op, str) else op  # as lookups take names
        if not getattr(self._blocks, "tokens", None):  # an outermost map is a run of its own
            with self._next_run(run_spec(None, None, kind="map")):
                return map_calls(self, op, items, executor, n_jobs, on_error, progress,  # type: ignore[arg-type]
                                 retry_failed, chunksize, executor_options)
        return map_calls(self, op, items, executor, n_jobs, on_error, progress,  # type: ignore[arg-type]
                         retry_failed, chunksize, executor_options)

    def __repr__(self) -> str:
        counts = self._store.counts()
        pending = self._buffer.pending_calls
        pending_text = f", pending={pending}" if pending else ""
        return (f"Storage({self._where()}, ops={counts['ops']}, calls={counts['calls']}, "
                f"values={counts['values']}, bytes={human_bytes(counts['bytes'])}{pending_text})")

    def _where(self) -> str:
        return self.config.location

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

    >>> import os, tempfile
    >>> from memostore import Storage, upgrade_store
    >>> path = os.path.join(tempfile.mkdtemp(), "runs.db")
    >>> Storage(db_path=path).close()
    >>> upgrade_store(db_path=path)  # written by this release: nothing to do
    []
    """
    if (db_url is None) == (db_path is None):
        raise StorageOptionError("upgrade_store takes db_url or db_path (one of them), got "
                                 + ("both" if db_url is not None else "neither"))
    database = Database(StorageConfig(db_path=None if db_path is None else os.fspath(db_path), db_url=db_url).url)
    try:
        return upgrade(database)
    finally:
        database.close()
