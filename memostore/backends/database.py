"""One database connection per process, the one transaction manager, and compiled statements.

SQLAlchemy builds every statement from the tables in ``schema.py`` and
compiles it once per store for its dialect; statements then run on the
driver's own connection. That keeps the call path at one driver round trip
(about 10 µs on SQLite) instead of SQLAlchemy's per-execute overhead.

Reads outside a transaction run in autocommit mode, so each sees what other
processes committed. ``transaction()`` is the one place that issues BEGIN,
COMMIT and ROLLBACK: on SQLite a writer takes the write lock up front
(BEGIN IMMEDIATE); a read-only transaction sees one consistent state of the
store (what a snapshot needs). ``run()`` retries a transaction when the
database is locked, until a deadline, and returns what its work returned.

A PostgreSQL connection heals: when the server went away (a restart, a
failover, a dropped idle connection) the connection is invalidated and the
transaction or autocommit read runs again on a new one, with backoff, for
up to ``retry_s`` of outage, then StoreUnavailableError. An outage that
already lasted that long makes later calls try once, until the server
answers again. The pool holds at most two connections per process (one in
use; a second only for Alembic's migrations), and a connection unused for
``idle_close_s`` is closed. SQLite keeps one connection per process.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import ClauseElement, Table, bindparam, create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.crud import REQUIRED

from memostore.backends.connections import (
    IdleCloser,
    is_transient,
    server_address,
    server_message,
    unavailable_error,
)
from memostore.backends.exiting import close_at_exit
from memostore.backends.faults import storage_error
from memostore.backends.sqlite_files import checkpoint_pages, configure_file_connection
from memostore.backends.statements import BUSY_TIMEOUT_S, engine_options, in_chunks, is_lock_contention
from memostore.config import DEFAULT_IDLE_CLOSE_S, DEFAULT_RETRY_S
from memostore.errors import StorageError

logger = logging.getLogger(__name__)

LOCK_DEADLINE_S = 600.0  # how long a writer waits for the lock before giving up
BACKUP_PAGES_PER_STEP = 4096  # pages copied per step of an online backup, between which writers may run
CONNECT_TIMEOUT_S = 10  # a server that does not answer a connection attempt in this time is retried
RECYCLE_S = 1800.0  # a pooled server connection is replaced at checkout once this old
MAX_BACKOFF_S = 2.0  # the longest wait between two attempts to reach a server that went away

_idle_closer = IdleCloser()
_databases: weakref.WeakSet[Database] = weakref.WeakSet()

T = TypeVar("T")


class Prepared:
    """A statement compiled for one dialect, with its constant parameters.

    Compiled for a positional dialect (see ``Database.insert``), it takes rows
    as tuples in ``column_keys`` order: the driver binds a tuple by position,
    where a dict costs a lookup per column and row.
    """

    __slots__ = ("sql", "defaults")

    def __init__(self, statement: ClauseElement, dialect: Any, column_keys: list[str] | None = None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        order = getattr(compiled, "positiontup", None)
        if dialect.positional and list(order or ()) != column_keys:
            raise StorageError(f"a positional statement binds {order}, not the columns "
                               f"{column_keys} its rows give: {compiled}")
        self.sql = str(compiled)
        # Constants only: an INSERT's columns compile to REQUIRED placeholders, which every row gives.
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None and v is not REQUIRED}

    def params(self, given: Any) -> Any:
        """``given`` with the statement's constants (a positional statement's tuple has none to add)."""
        return {**self.defaults, **given} if self.defaults else given


class _Held:
    """The pooled connection a Database uses, and the process that checked it out."""

    __slots__ = ("proxy", "driver", "pid", "pool_pid", "cursor")

    def __init__(self) -> None:
        self.proxy: Any = None
        self.driver: Any = None  # the proxy's driver connection (valid while pid is this process)
        self.cursor: tuple[Any, Any] = (None, None)  # a driver connection, its cursor of single statements
        self.pid = -1
        self.pool_pid = os.getpid()  # the process whose connections the engine's pool holds


def _release(held: _Held, engine: Engine) -> None:
    """Close the connection in use and the pooled ones, if this process opened them: closing a
    connection a forked child inherited would end its parent's session."""
    if held.proxy is not None and held.pid == os.getpid():
        with contextlib.suppress(Exception):
            held.proxy.close()
    held.proxy, held.pid, held.cursor = None, -1, (None, None)
    engine.dispose(close=held.pool_pid == os.getpid())
    held.pool_pid = os.getpid()


class Database:
    """A SQLite or PostgreSQL database reached through its driver, one connection per process."""

    def __init__(self, url: str, retry_s: float = DEFAULT_RETRY_S,
                 idle_close_s: float = DEFAULT_IDLE_CLOSE_S) -> None:
        self.url = url
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StorageError(
                f"unsupported database {backend!r} in {make_url(url).render_as_string(hide_password=True)!r}: "
                "memostore stores calls in SQLite (db_path=...) or PostgreSQL (db_url=...)"
            )
        self.is_sqlite = backend == "sqlite"
        self.where = make_url(url).render_as_string(hide_password=True)  # for messages: no password
        # A read-only connection (SQLite ``mode=ro``, PostgreSQL read-only transactions): the viewer's.
        self.read_only = "mode=ro" in url or "default_transaction_read_only" in url
        self.retry_s, self.idle_close_s = retry_s, idle_close_s
        self.engine: Engine = self._engine(url)
        self.dialect = self.engine.dialect
        self.file_path: Path | None = None
        if self.is_sqlite and self.engine.url.database not in (None, "", ":memory:"):
            self.file_path = Path(str(self.engine.url.database))
        self._lock = threading.RLock()
        self._held = _Held()  # the connection in use, and the process that opened it
        self._last_used_s = 0.0
        self._down_since: float | None = None  # when the server stopped answering (None: it answers)
        self._warned = False  # whether this outage was logged as a warning
        self._prepared: dict[str, Prepared] = {}
        self._in_prepared: dict[tuple[str, int, bool], Prepared] = {}
        self._checkpoint_pages = 0  # the log size, in pages, at which SQLite checkpoints (0: not set yet)
        _databases.add(self)
        close_at_exit(self)  # a script that never calls close() leaves no write-ahead log behind
        if not self.is_sqlite:
            _idle_closer.watch(self)
            # A store dropped without close() (one that failed to open) gives its connections back.
            weakref.finalize(self, _release, self._held, self.engine)

    def _engine(self, url: str) -> Engine:
        if self.is_sqlite:
            return create_engine(url, poolclass=NullPool, **engine_options(url))
        options = engine_options(url)
        if "connect_timeout" not in url:
            options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **options.get("connect_args", {})}
        # Every use holds self._lock, so one connection serves the process; a second is for
        # Alembic's migrations. Pre-ping checks a pooled connection before lending it out.
        return create_engine(url, pool_size=1, max_overflow=1, pool_recycle=RECYCLE_S, pool_pre_ping=True,
                             **options)

    # --- the connection ------------------------------------------------------

    def connection(self) -> Any:
        """The driver connection of this process (opened on first use, again after a fork,
        after a disconnect and after sitting idle)."""
        if self._held.pid != _ThisProcess.pid:
            if self._held.pool_pid != os.getpid() and not self.is_sqlite:
                self.engine.dispose(close=False)  # the parent's pooled connections are not ours
                self._held.pool_pid = os.getpid()
                _idle_closer.watch(self)  # the parent's thread closing idle connections did not come along
            # A forked child must not share its parent's connection.
            self._held.proxy = self.engine.raw_connection()
            self._held.driver = self._held.proxy.driver_connection
            self._held.pid = os.getpid()
            self._configure(self._held.driver)
        self._last_used_s = time.monotonic()
        return self._held.driver

    def _configure(self, connection: Any) -> None:
        if self.is_sqlite:
            connection.isolation_level = None  # we issue BEGIN and COMMIT ourselves
            cursor = connection.cursor()
            if self.file_path is not None:
                configure_file_connection(cursor)
                self._checkpoint_pages = 0  # a new connection starts at SQLite's default
                self._pace_checkpoints(cursor)
            cursor.execute("PRAGMA busy_timeout=%d" % int(BUSY_TIMEOUT_S * 1000))
        else:
            connection.autocommit = True

    def _pace_checkpoints(self, cursor: Any) -> None:
        """Let the log grow with the file before a checkpoint (``sqlite_files.checkpoint_pages``)."""
        pages = checkpoint_pages(str(self.file_path))
        if pages is not None and pages != self._checkpoint_pages:
            cursor.execute("PRAGMA wal_autocheckpoint=%d" % pages)
            self._checkpoint_pages = pages

    def close(self, wait_s: float = -1) -> None:
        """Release this process's connections (reopened on next use; twice is fine), unless busy over ``wait_s``."""
        if not self._lock.acquire(timeout=wait_s):
            return
        try:
            if self.is_sqlite:
                if self._held.proxy is not None and self._held.pid == os.getpid():
                    self._held.proxy.close()
                self._held.proxy, self._held.pid = None, -1
            else:
                _release(self._held, self.engine)  # also the pooled connections, not only the one in use
        finally:
            self._lock.release()

    def close_if_idle(self) -> None:
        """Close the server connection if unused for ``idle_close_s`` (and not in use now)."""
        if self._held.proxy is None or time.monotonic() - self._last_used_s < self.idle_close_s:
            return
        if self._lock.acquire(blocking=False):
            try:
                if self._held.proxy is not None and time.monotonic() - self._last_used_s >= self.idle_close_s:
                    logger.debug("closing the connection to %s, unused for %.0f s", self.where, self.idle_close_s)
                    self.close()
            finally:
                self._lock.release()

    def _invalidate(self) -> None:
        """Drop a connection the server broke, and every pooled one: they all died with it."""
        with self._lock:
            if self._held.proxy is not None and self._held.pid == os.getpid():
                with contextlib.suppress(Exception):
                    self._held.proxy.invalidate()
            _release(self._held, self.engine)

    def after_fork(self) -> None:
        """In a forked child: a lock another thread of the parent held would never be released here."""
        self._lock = threading.RLock()

    # --- transactions ----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Any]:
        """BEGIN; yield a cursor; COMMIT, or ROLLBACK if the body (or COMMIT) raised.

        A writer holds the write lock from BEGIN on; a ``read_only``
        transaction reads one consistent state and takes no write lock. A full
        disk raises StorageFullError, a damaged database CorruptStoreError.
        A server that went away leaves the connection invalidated, for the
        next use to open a new one.
        """
        with self._lock:
            cursor = None
            try:
                cursor = self.connection().cursor()
                if read_only:
                    cursor.execute("BEGIN" if self.is_sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                else:
                    cursor.execute("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
                yield cursor
                cursor.execute("COMMIT")
                if not read_only and self.file_path is not None:
                    self._pace_checkpoints(cursor)  # the file grew: the log may grow with it
            except BaseException as err:
                if not self.is_sqlite and is_transient(err):
                    self._invalidate()
                    raise
                if cursor is not None:
                    with contextlib.suppress(Exception):
                        cursor.execute("ROLLBACK")
                mapped = storage_error(err, self.where)
                if mapped is None:
                    raise
                raise mapped from err

    def run(self, work: Callable[[Any], T], read_only: bool = False) -> T:
        """``work(cursor)`` in a transaction, retried while the database is locked or the
        server is reconnecting; returns its result. ``work`` may run more than once."""
        def attempt() -> T:
            with self.transaction(read_only) as cursor:
                return work(cursor)

        return self._retrying(attempt)

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, again while the database is locked (up to LOCK_DEADLINE_S) or the
        server is unreachable (up to ``retry_s`` of outage, then StoreUnavailableError)."""
        lock_deadline = time.monotonic() + LOCK_DEADLINE_S
        delay_s = 0.01
        while True:
            try:
                result = attempt()
            except Exception as err:
                if not self.is_sqlite and is_transient(err):
                    delay_s = self._wait_for_server(err, delay_s)
                    continue
                if not is_lock_contention(err) or time.monotonic() > lock_deadline:
                    raise
                logger.debug("database busy, retrying in %.2fs: %s", delay_s, err)
                time.sleep(delay_s * (1 + random.random()))
                delay_s = min(delay_s * 2, 1.0)
                continue
            if self._down_since is not None:
                if self._warned:
                    logger.warning("the server at %s answers again", server_address(self.url))
                self._down_since, self._warned = None, False
            return result

    def _wait_for_server(self, err: Exception, delay_s: float) -> float:
        """Sleep before the next attempt; raise StoreUnavailableError once the outage outlasted ``retry_s``."""
        now = time.monotonic()
        if self._down_since is None:
            # A connection the server dropped (a restart, an idle timeout) is routine: reconnect at once.
            self._down_since = now
            logger.info("the connection to %s broke (%s); reconnecting", server_address(self.url),
                        server_message(err, self.url))
            return delay_s
        waited_s = now - self._down_since
        if waited_s >= self.retry_s:
            raise unavailable_error(self.url, err, waited_s, self.retry_s) from err
        if not self._warned:
            self._warned = True
            logger.warning("the server at %s does not answer (%s); retrying for up to %g s",
                           server_address(self.url), type(err).__name__, self.retry_s)
        time.sleep(min(delay_s * (1 + random.random()), self.retry_s - waited_s))
        return min(max(delay_s, 0.05) * 2, MAX_BACKOFF_S)

    # --- statements --------------------------------------------------------------

    def statement(self, key: str, build: Callable[[], ClauseElement],
                  column_keys: list[str] | None = None, positional: bool = False) -> Prepared:
        """``build()`` compiled for this dialect, once per key; ``positional``: it takes its
        parameters as a tuple in ``column_keys`` order (the driver binds a name at a time)."""
        prepared = self._prepared.get(key)
        if prepared is None:
            dialect = self._positional_dialect() if positional else self.dialect
            prepared = self._prepared[key] = Prepared(build(), dialect, column_keys)
        return prepared

    def fetch(self, prepared: Prepared, params: dict[str, Any] | tuple[Any, ...] | None = None,
              cursor: Any = None) -> list[tuple[Any, ...]]:
        """The rows of one statement (parameters by name, or a tuple for a positional one),
        in the transaction of ``cursor`` or else in autocommit."""
        if cursor is not None or self.is_sqlite:  # in a transaction, its run() retries the whole of it
            return self._fetch(prepared, params, cursor)
        return self._retrying(lambda: self._fetch(prepared, params, None))

    def _fetch(self, prepared: Prepared, params: dict[str, Any] | tuple[Any, ...] | None,
               cursor: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if cursor is None:  # one cursor per connection: a new one per statement costs half a probe
                    driver = self.connection()
                    if self._held.cursor[0] is not driver:
                        self._held.cursor = (driver, driver.cursor())
                    cursor = self._held.cursor[1]
                cursor.execute(prepared.sql, prepared.params(params or {}) if prepared.defaults else params or ())
                rows: list[tuple[Any, ...]] = cursor.fetchall()
            except Exception as err:
                if not self.is_sqlite and is_transient(err):
                    self._invalidate()
                    raise
                mapped = storage_error(err, self.where)
                if mapped is None:
                    raise
                raise mapped from err
            return rows

    def in_statement(self, key: str, build: Callable[[Any], ClauseElement], width: int,
                     positional: bool = False) -> Prepared:
        """``build(ids)``, whose ``column.in_(ids)`` becomes a list of ``width`` parameters ``id_0``...

        Compiled once per key; each width is then a text substitution (SQLAlchemy
        takes milliseconds to compile a list of hundreds of parameters).
        ``positional``: it takes a list of the ids and no other parameter (SQLite
        finds each named one by a scan of the names: quadratic in the width).
        """
        prepared = self._in_prepared.get((key, width, positional))
        if prepared is None:
            template = self._in_prepared.get((key, 0, positional))
            if template is None:
                statement = build(bindparam("ids", expanding=True))
                template = self._in_prepared[(key, 0, positional)] = (
                    Prepared(statement, self._positional_dialect(), ["ids"]) if positional
                    else Prepared(statement, self.dialect))
            style = ("?" if self.is_sqlite else "%s") if positional else (
                ":{}" if self.dialect.paramstyle == "named" else "%({})s")
            params = [style.format(f"id_{i}") for i in range(width)]  # (no {} in a positional style)
            prepared = Prepared.__new__(Prepared)
            prepared.defaults = {k: v for k, v in template.defaults.items() if k != "ids"}
            prepared.sql = template.sql.replace("__[POSTCOMPILE_ids]", ", ".join(params))
            self._in_prepared[(key, width, positional)] = prepared
        return prepared

    def fetch_in(self, key: str, build: Callable[[list[Any]], ClauseElement], ids: Iterable[Any],
                 extra: dict[str, Any] | None = None, cursor: Any = None) -> list[tuple[Any, ...]]:
        """The rows of ``build(IN-list)`` over ``ids``, IN_CHUNK ids at a time."""
        rows: list[tuple[Any, ...]] = []
        for width, params in in_chunks(ids, extra):
            rows.extend(self.fetch(self.in_statement(key, build, width), params, cursor))
        return rows

    def insert(self, table: Table, conflict_keys: Sequence[str], columns: Sequence[str],
               update: Sequence[str] = (), only_if: Any = None, values: dict[str, Any] | None = None,
               positional: bool = False) -> Prepared:
        """INSERT of ``columns`` that keeps existing rows, or updates ``update`` columns (where ``only_if``).

        ``values`` gives more columns, computed by the statement (scalar subqueries).
        ``positional``: rows are tuples in ``columns`` order (the flush's bulk rows), not dicts.
        """
        # Each dialect's module is imported when its store is: a process that opens a SQLite store
        # (a joblib worker, say) does not pay for PostgreSQL's (about 0.1 s).
        insert = importlib.import_module(f"sqlalchemy.dialects.{'sqlite' if self.is_sqlite else 'postgresql'}").insert

        def build() -> ClauseElement:
            statement: Any = insert(table).inline()  # no RETURNING: executemany reads nothing back
            if values:
                statement = statement.values(**values)
            if update:
                statement = statement.on_conflict_do_update(
                    index_elements=list(conflict_keys),
                    set_={name: statement.excluded[name] for name in update}, where=only_if)
            else:
                statement = statement.on_conflict_do_nothing(index_elements=list(conflict_keys))
            built: ClauseElement = statement
            return built

        key = f"insert:{table.name}:{','.join(columns)}:{','.join(update)}:{'positional' if positional else ''}"
        prepared = self._prepared.get(key)
        if prepared is None:
            dialect = self._positional_dialect() if positional else self.dialect
            prepared = self._prepared[key] = Prepared(build(), dialect, list(columns))
        return prepared

    def _positional_dialect(self) -> Any:
        """This store's dialect with the driver's positional parameter style (``?`` or ``%s``)."""
        dialect = copy.copy(self.dialect)
        dialect.paramstyle = "qmark" if self.is_sqlite else "format"
        dialect.positional = True
        return dialect

    def vacuum(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite) or the server (PostgreSQL)."""
        with self._lock:
            cursor = self.connection().cursor()  # autocommit: VACUUM cannot run in a transaction
            cursor.execute("VACUUM")
            if self.is_sqlite:  # in WAL mode the file shrinks only once the log is written back
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- backups ------------------------------------------------------------------

    def backup(self, path: Path) -> None:
        """A consistent copy of this SQLite database at ``path`` (SQLite's online backup API).

        Writers go on between steps; the copy is the state of the store when the
        last step ran. Raises StorageError on PostgreSQL, which has its own tools.
        """
        if not self.is_sqlite:
            raise StorageError(
                f"storage.backup() copies SQLite stores only; back up the PostgreSQL store at "
                f"{make_url(self.url).render_as_string(hide_password=True)} with pg_dump "
                "(its schema holds every memostore table) and copy its blob directory")
        target = sqlite3.connect(str(path))
        try:
            with self._lock:
                self.connection().backup(target, pages=BACKUP_PAGES_PER_STEP)
        finally:
            target.close()

    def executemany(self, cursor: Any, prepared: Prepared, rows: Sequence[Any]) -> None:
        """``prepared`` once per row (a dict; a tuple for a positional statement), in ``cursor``'s transaction."""
        if rows:
            cursor.executemany(prepared.sql, [prepared.params(row) for row in rows] if prepared.defaults else rows)



class _ThisProcess:
    """This process's id, kept by the fork hook below: ``os.getpid()`` is a system call (half a
    microsecond on a virtual machine, a twentieth of a single lookup), and every statement asks."""

    pid = os.getpid()


def _after_fork_in_child() -> None:
    _ThisProcess.pid = os.getpid()
    _idle_closer.after_fork()
    for database in list(_databases):
        database.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
