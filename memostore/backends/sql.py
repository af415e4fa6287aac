"""The metadata store on SQLAlchemy Core: the only module that executes SQL.

SQLAlchemy builds every statement from the tables in ``schema.py`` and
compiles it once per store for its dialect; statements then run on the
driver's own connection. That keeps the call path at one driver round trip
(about 10 µs on SQLite) instead of SQLAlchemy's per-execute overhead.

Reads run in autocommit mode, so each sees what other processes committed
(a lookup that misses the cache finds calls a worker stored a second ago).
Writes run in the one transaction manager, ``transaction()``; on SQLite it
takes the write lock up front (BEGIN IMMEDIATE), and ``_write_with_retry``
retries a transaction only when the database is locked, until a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import (
    ClauseElement,
    and_,
    bindparam,
    create_engine,
    delete,
    func,
    literal,
    select,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateIndex, CreateTable

from memostore.backends import collection, schema
from memostore.backends.base import (
    CallRecords,
    Edge,
    Snapshot,
    StoredOutputs,
    StoredValue,
    WriteBatch,
    calls_from_records,
)
from memostore.backends.faults import storage_error
from memostore.backends.statements import (
    BUSY_TIMEOUT_S,
    IN_PARAM_NAMES,
    SCAN_MIN_FRACTION,
    SCAN_MIN_IDS,
    check_compatible,
    edges_snapshot_statement,
    engine_options,
    failed_snapshot_statement,
    find_outputs_statement,
    group_outputs,
    in_chunks,
    is_lock_contention,
    op_groups_snapshot_statement,
    op_versions_statement,
)
from memostore.errors import CorruptStoreError, StorageError
from memostore.hashing import HASH_FORMAT
from memostore.model import CALL_ROW_FIELDS, Call

logger = logging.getLogger(__name__)

LOCK_DEADLINE_S = 600.0  # how long a writer waits for the lock before giving up
PAGE_CACHE_KIB = 256 * 1024  # SQLite page cache per connection, at most
_WRITE_ORDER = ("values", "refs", "calls", "edges", "op_versions")
_KEYS = {
    "values": ("cid",),
    "refs": ("hid",),
    "calls": ("hid",),
    "edges": ("call_hid", "direction", "name"),
    "op_versions": ("op", "version"),
}


class _Prepared:
    """A statement compiled for one dialect, with its constant parameters."""

    __slots__ = ("sql", "defaults")

    def __init__(self, statement: ClauseElement, dialect: Any, column_keys: list[str] | None = None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = str(compiled)
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}


class SqlMetadataStore:
    """Calls, refs, values and edges in a SQLite or PostgreSQL database.

    >>> store = SqlMetadataStore("sqlite://")
    >>> store.counts()
    {'ops': 0, 'calls': 0, 'values': 0, 'bytes': 0}
    """

    def __init__(self, url: str) -> None:
        self.url = url
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StorageError(
                f"unsupported database {backend!r} in {url!r}: "
                "memostore stores calls in SQLite (db_path=...) or PostgreSQL (db_url=...)"
            )
        self.is_sqlite = backend == "sqlite"
        self._where = make_url(url).render_as_string(hide_password=True)
        self._engine = create_engine(url, poolclass=NullPool, **engine_options(url))
        self._dialect = self._engine.dialect
        self._lock = threading.RLock()
        self._proxy: Any = None
        self._pid = -1
        self._prepared: dict[str, _Prepared] = {}
        self._create_schema()

    # --- connection and transactions -------------------------------------

    def _connection(self) -> Any:
        if self._pid != os.getpid():
            # A forked child must not share its parent's connection.
            self._proxy = self._engine.raw_connection()
            self._pid = os.getpid()
            self._configure(self._proxy.driver_connection)
        return self._proxy.driver_connection

    def _configure(self, connection: Any) -> None:
        if self.is_sqlite:
            connection.isolation_level = None  # we issue BEGIN and COMMIT ourselves
            cursor = connection.cursor()
            if self._engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL survives a killed process; only an OS crash
                # may lose the last transactions, never the file's integrity.
                cursor.execute("PRAGMA synchronous=NORMAL")
                # Frames read many rows by id: a larger page cache (allocated as
                # used) saves a system call per probe once the store outgrows 2 MB.
                cursor.execute("PRAGMA cache_size=-%d" % PAGE_CACHE_KIB)
            cursor.execute("PRAGMA busy_timeout=%d" % int(BUSY_TIMEOUT_S * 1000))
        else:
            connection.autocommit = True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN; yield a cursor; COMMIT, or ROLLBACK if the body (or COMMIT) raised.

        A full disk raises StorageFullError, a damaged database CorruptStoreError.
        """
        with self._lock:
            cursor = None
            try:
                cursor = self._connection().cursor()
                cursor.execute("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as err:
                if cursor is not None:
                    with contextlib.suppress(Exception):
                        cursor.execute("ROLLBACK")
                mapped = storage_error(err, self._where)
                if mapped is None:
                    raise
                raise mapped from err

    def _write_with_retry(self, work: Callable[[Any], None]) -> None:
        deadline = time.monotonic() + LOCK_DEADLINE_S
        delay_s = 0.01
        while True:
            try:
                with self.transaction() as cursor:
                    work(cursor)
                return
            except Exception as err:
                if not is_lock_contention(err) or time.monotonic() > deadline:
                    raise
                logger.debug("database busy, retrying in %.2fs: %s", delay_s, err)
                time.sleep(delay_s * (1 + random.random()))
                delay_s = min(delay_s * 2, 1.0)

    def close(self) -> None:
        """Release the connection; the next use reopens it."""
        with self._lock:
            if self._proxy is not None and self._pid == os.getpid():
                self._proxy.close()
            self._proxy, self._pid = None, -1

    def vacuum(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite) or the server (PostgreSQL)."""
        with self._lock:
            cursor = self._connection().cursor()  # autocommit: VACUUM cannot run in a transaction
            cursor.execute("VACUUM")
            if self.is_sqlite:  # in WAL mode the file shrinks only once the log is written back
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- statements -------------------------------------------------------

    def _statement(self, key: str, build: Callable[[], ClauseElement],
                   column_keys: list[str] | None = None) -> _Prepared:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = _Prepared(build(), self._dialect, column_keys)
        return prepared

    def _fetch(self, prepared: _Prepared, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                cursor = self._connection().cursor()
                cursor.execute(prepared.sql, {**prepared.defaults, **params} if prepared.defaults else params)
                rows: list[tuple[Any, ...]] = cursor.fetchall()
            except Exception as err:
                mapped = storage_error(err, self._where)
                if mapped is None:
                    raise
                raise mapped from err
            return rows

    def _fetch_in(self, key: str, build: Callable[[Any], ClauseElement], ids: Iterable[str],
                  extra: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``build(IN-list of bind params)`` over ``ids`` in chunks."""
        prepared = self._in_statement(key, build)
        rows: list[tuple[Any, ...]] = []
        for params in in_chunks(ids, extra):
            rows.extend(self._fetch(prepared, params))
        return rows

    def _in_statement(self, key: str, build: Callable[[Any], ClauseElement]) -> _Prepared:
        return self._statement("in:" + key, lambda: build([bindparam(name) for name in IN_PARAM_NAMES]))

    def _insert(self, table_name: str, update: Sequence[str] = (), only_if: Any = None) -> _Prepared:
        """INSERT that keeps existing rows, or updates ``update`` columns (where ``only_if``)."""
        table = schema.metadata.tables["memostore_" + table_name]
        insert = sqlite.insert if self.is_sqlite else postgresql.insert

        def build() -> ClauseElement:
            statement = insert(table)
            if update:
                return statement.on_conflict_do_update(
                    index_elements=list(_KEYS[table_name]),
                    set_={name: statement.excluded[name] for name in update},
                    where=only_if,
                )
            return statement.on_conflict_do_nothing()

        return self._statement("insert:" + table_name, build, [c.name for c in table.columns])

    # --- schema -----------------------------------------------------------

    def _create_schema(self) -> None:
        version_query = self._statement(
            "schema_version",
            lambda: select(schema.meta.c.key, schema.meta.c.value),
        )
        try:
            existing = {key: value for key, value in self._fetch(version_query, {})}
        except CorruptStoreError:
            raise
        except Exception:
            existing = {}  # no meta table yet: a new store
        check_compatible(existing, self._where)
        if existing and _read_only(self.url):
            return  # a read-only view of an existing store: nothing to create, nothing may be written

        def create(cursor: Any) -> None:
            if not self.is_sqlite:
                # Concurrent CREATE IF NOT EXISTS can clash in PostgreSQL's catalog.
                cursor.execute(str(select(func.pg_advisory_xact_lock(literal(0x6D656D6F))).compile(
                    dialect=self._dialect, compile_kwargs={"literal_binds": True})))
            for table in schema.metadata.sorted_tables:
                cursor.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=self._dialect)))
                for index in table.indexes:
                    cursor.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=self._dialect)))
            rows = [
                {"key": "schema_version", "value": str(schema.SCHEMA_VERSION)},
                {"key": "hash_format", "value": str(HASH_FORMAT)},
                {"key": "created_at", "value": repr(time.time())},
            ]
            cursor.executemany(self._insert("meta").sql, rows)

        self._write_with_retry(create)

    # --- writes -----------------------------------------------------------

    def write(self, batch: WriteBatch, complete: Callable[[set[str]], WriteBatch] | None = None) -> None:
        """Insert every row of ``batch`` in one transaction; existing rows are kept.

        An op version already stored keeps its source and first use and gets
        the batch's last use. A call stored as failed is replaced by the same
        call written again (a retry); a call stored as ok is never replaced.
        With ``complete``, the rows written are ``complete(cids)``, where
        ``cids`` are the values the batch's refs and edges name that are
        neither stored nor in the batch, found inside the transaction, where
        no cleanup can run (see ``delete_unreferenced``).
        """
        if not batch:
            return
        statements = {name: self._insert(name) for name in ("values", "refs", "edges")}
        calls = schema.calls.c
        statements["calls"] = self._insert(
            "calls", update=[c.name for c in schema.calls.columns if c.name != "hid"],
            only_if=calls.status == bindparam("failed_status", "failed"))
        statements["op_versions"] = self._insert("op_versions", update=("last_used",))

        def work(cursor: Any) -> None:
            rows_of = batch
            if complete is not None:
                self._lock_collection(cursor, exclusive=False)
                rows_of = complete(self._missing_values(cursor, batch))
            for name in _WRITE_ORDER:
                rows = getattr(rows_of, name)
                if rows:
                    table = schema.metadata.tables["memostore_" + name]
                    # Nullable columns may be left out of a row; constants come from the statement.
                    fixed = {**{c.name: None for c in table.columns if c.nullable}, **statements[name].defaults}
                    if fixed:
                        rows = [{**fixed, **row} for row in rows]
                    # A fixed order of keys keeps concurrent PostgreSQL writers deadlock-free.
                    keys = _KEYS[name]
                    rows = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
                    cursor.executemany(statements[name].sql, rows)

        self._write_with_retry(work)

    # --- garbage collection (issue 12): safe against concurrent writers --------------

    def _lock_collection(self, cursor: Any, exclusive: bool) -> None:
        """See ``collection``: SQLite's BEGIN IMMEDIATE already serializes all writes."""
        if not self.is_sqlite:
            cursor.execute(collection.lock_sql(self._dialect, exclusive))

    def _missing_values(self, cursor: Any, batch: WriteBatch) -> set[str]:
        """The cids the batch's refs and edges name that are neither stored nor in the batch."""
        named = collection.named_cids(batch)
        present = self._in_statement("present_values", collection.present_values_statement)
        for params in in_chunks(named):
            cursor.execute(present.sql, params)
            named.difference_update(row[0] for row in cursor.fetchall())
        return named

    def _note_collection(self, cursor: Any) -> None:
        statement = self._statement("new_token", lambda: collection.new_token_statement(self.is_sqlite),
                                    ["key", "value"])
        cursor.execute(statement.sql, collection.new_token_row())

    def collection_token(self) -> str:
        """A token that changes whenever calls are dropped or values deleted, by any process."""
        rows = self._fetch(self._statement("collection_token", collection.token_statement), {})
        return str(rows[0][0]) if rows else ""

    def delete_calls(self, call_hids: Iterable[str]) -> None:
        """Delete these calls and their edges in one transaction (misses skipped)."""
        hids = list(call_hids)
        e, c = schema.edges.c, schema.calls.c
        delete_edges = self._in_statement("delete_edges", lambda ids: delete(schema.edges).where(e.call_hid.in_(ids)))
        delete_calls = self._in_statement("delete_calls", lambda ids: delete(schema.calls).where(c.hid.in_(ids)))

        def work(cursor: Any) -> None:
            self._note_collection(cursor)
            for params in in_chunks(hids):
                cursor.execute(delete_edges.sql, params)
                cursor.execute(delete_calls.sql, params)

        self._write_with_retry(work)

    def delete_unreferenced(self, inside: Callable[[list[str], set[str]], None] | None = None,
                            notice_s: float = 0.0) -> tuple[int, dict[str, int], list[str]]:
        """Delete refs no call edge uses, then values no ref or edge uses.

        With ``notice_s``, first change the collection token and wait that long,
        so that other processes forget their caches. Then runs holding the write
        lock (SQLite) or the collection lock alone (PostgreSQL), so no flush
        interleaves: a flush before it is seen, one after it writes again the
        values it needs. ``inside(blob cids deleted, blob cids still stored)``
        runs before COMMIT, still holding the lock (the blob store removes files
        there). Returns the number of refs deleted, cid -> size of the values
        deleted, and the blob cids among them.
        """
        if notice_s:
            self._write_with_retry(self._note_collection)
            time.sleep(notice_s)
        r, v, e = schema.refs.c, schema.values.c, schema.edges.c
        orphan_refs = self._statement("orphan_refs", lambda: delete(schema.refs).where(
            r.hid.not_in(select(e.ref_hid).scalar_subquery())))
        unused = collection.unused_values()
        blob_cids = self._statement("blob_cids", lambda: select(v.cid).where(v.inline_data.is_(None)))
        find_values = self._statement("orphan_values", lambda: select(
            v.cid, v.size_bytes, v.inline_data.is_(None)).where(unused))
        delete_values = self._statement("delete_orphan_values", lambda: delete(schema.values).where(unused))
        result: list[Any] = []

        def work(cursor: Any) -> None:
            self._lock_collection(cursor, exclusive=True)
            self._note_collection(cursor)
            cursor.execute(orphan_refs.sql, orphan_refs.defaults)
            refs_deleted = cursor.rowcount
            cursor.execute(find_values.sql, find_values.defaults)
            rows = cursor.fetchall()
            cursor.execute(delete_values.sql, delete_values.defaults)
            result[:] = [refs_deleted, {cid: size for cid, size, _ in rows},
                         [cid for cid, _, in_blob in rows if in_blob]]
            if inside is not None:
                cursor.execute(blob_cids.sql, blob_cids.defaults)
                inside(result[2], {row[0] for row in cursor.fetchall()})

        self._write_with_retry(work)
        return result[0], result[1], result[2]

    # --- claims -----------------------------------------------------------

    def claim(self, call_hids: Iterable[str], owner: str, ttl_s: float) -> set[str]:
        """Claim these calls unless someone else holds an unexpired claim; returns those ``owner`` holds."""
        hids = sorted(set(call_hids))
        k = schema.claims.c
        expired = self._in_statement("claims_expired", lambda ids: delete(schema.claims).where(
            k.call_hid.in_(ids), k.expires_at < bindparam("now")))
        insert = self._insert("claims")
        held = self._in_statement("claims_held", lambda ids: select(k.call_hid).where(
            k.call_hid.in_(ids), k.owner == bindparam("owner")))
        mine: set[str] = set()

        def work(cursor: Any) -> None:
            now = time.time()
            for params in in_chunks(hids, {"now": now}):
                cursor.execute(expired.sql, params)
            cursor.executemany(insert.sql, [{"call_hid": h, "owner": owner, "expires_at": now + ttl_s}
                                            for h in hids])
            mine.clear()
            for params in in_chunks(hids, {"owner": owner}):
                cursor.execute(held.sql, params)
                mine.update(row[0] for row in cursor.fetchall())

        if hids:
            self._write_with_retry(work)
        return mine

    def renew_claims(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every claim ``owner`` holds."""
        k = schema.claims.c
        renew = self._statement("claims_renew", lambda: update(schema.claims).where(
            k.owner == bindparam("owner")).values(expires_at=bindparam("expires_at")))
        self._write_with_retry(lambda cursor: cursor.execute(
            renew.sql, {"owner": owner, "expires_at": time.time() + ttl_s}))

    def release_claims(self, owner: str) -> None:
        """Drop every claim ``owner`` holds (absent ones are fine)."""
        release = self._statement("claims_release", lambda: delete(schema.claims).where(
            schema.claims.c.owner == bindparam("owner")))
        self._write_with_retry(lambda cursor: cursor.execute(release.sql, {"owner": owner}))

    # --- the call path ----------------------------------------------------

    def find_outputs(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """The ok call with this hid, else one with this cid, else None."""
        rows = self._fetch(self._statement("find_outputs", find_outputs_statement),
                           {"hid": call_hid, "cid": call_cid})
        if not rows:
            return None
        outputs = [(name, ref_hid, ref_cid) for _, _, name, ref_hid, ref_cid in rows if name is not None]
        return StoredOutputs(rows[0][0], bool(rows[0][1]), outputs)

    def find_outputs_many(self, call_hids: Iterable[str], call_cids: Iterable[str]
                          ) -> tuple[dict[str, StoredOutputs], dict[str, StoredOutputs], set[str]]:
        """Batched lookup: ok calls by hid, ok calls by cid (for the cids given), failed hids."""
        c, e = schema.calls.c, schema.edges.c

        def by(column: Any) -> Callable[[Any], ClauseElement]:
            produced = and_(e.call_hid == c.hid, e.direction == bindparam("out", schema.DIRECTION_OUT))
            return lambda ids: (
                select(c.hid, c.cid, c.status, c.multi_output, e.name, e.ref_hid, e.ref_cid)
                .select_from(schema.calls.outerjoin(schema.edges, produced))
                .where(column.in_(ids)).order_by(c.hid, e.position))

        by_hid: dict[str, StoredOutputs] = {}
        failed: set[str] = set()
        for hid, _, outputs, status in group_outputs(self._fetch_in("many_by_hid", by(c.hid), call_hids)):
            if status == "failed":
                failed.add(hid)
            else:
                by_hid[hid] = outputs
        by_cid: dict[str, StoredOutputs] = {}
        for _, cid, outputs, status in group_outputs(self._fetch_in("many_by_cid", by(c.cid), call_cids)):
            if status == "ok":
                by_cid.setdefault(cid, outputs)
        return by_hid, by_cid, failed

    # --- GraphReader -------------------------------------------------------

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]:
        """The stored calls with these hids (misses left out), refs lazy."""
        return calls_from_records(self.call_records(call_hids))

    def call_records(self, call_hids: Iterable[str]) -> CallRecords:
        """The stored calls with these hids as raw rows (misses left out)."""
        c = schema.calls.c
        call_rows = self._fetch_in(
            "calls", lambda ids: select(*[c[name] for name in CALL_ROW_FIELDS]).where(c.hid.in_(ids)),
            call_hids)
        e = schema.edges.c
        edge_rows = self._fetch_in(
            "call_edges",
            lambda ids: select(e.call_hid, e.direction, e.name, e.ref_hid, e.ref_cid)
            .where(e.call_hid.in_(ids)).order_by(e.call_hid, e.direction, e.position),
            [row[0] for row in call_rows])
        return CallRecords(call_rows, edge_rows)

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]:
        """The hids of every stored call of these ops, all versions."""
        c = schema.calls.c
        rows = self._fetch_in("op_calls", lambda ids: select(c.hid).where(c.op.in_(ids)), op_names)
        return [row[0] for row in rows]

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]:
        """Edges that read ("in") or produced ("out") these refs."""
        return [Edge(call_hid, direction, name, ref_hid)
                for call_hid, name, ref_hid in self.ref_edge_rows(ref_hids, direction)]

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]:
        """``edges_of_refs`` as raw ``(call hid, name, ref hid)`` rows."""
        e = schema.edges.c
        return self._fetch_in(
            "ref_edges",
            lambda ids: select(e.call_hid, e.name, e.ref_hid)
            .where(e.ref_hid.in_(ids), e.direction == bindparam("direction")),
            ref_hids, {"direction": direction})

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]:
        """ref hid -> cid for the stored refs among ``ref_hids``."""
        r = schema.refs.c
        rows = self._fetch_in("ref_cids", lambda ids: select(r.hid, r.cid).where(r.hid.in_(ids)), ref_hids)
        return {hid: cid for hid, cid in rows}

    def value_rows(self, cids: Iterable[str]) -> list[StoredValue]:
        """The rows of the stored values among ``cids``, in no particular order."""
        v = schema.values.c
        wanted = set(cids)
        columns = (v.cid, v.format, v.inline_data, v.size_bytes)
        if len(wanted) >= SCAN_MIN_IDS and len(wanted) >= SCAN_MIN_FRACTION * self._fetch(
                self._statement("value_count", lambda: select(func.count(v.cid))), {})[0][0]:
            # Most of the table: one scan costs a fraction of probing each id.
            rows = [row for row in self._fetch(self._statement("all_values", lambda: select(*columns)), {})
                    if row[0] in wanted]
        else:
            rows = self._fetch_in("values", lambda ids: select(*columns).where(v.cid.in_(ids)), wanted)
        return rows  # type: ignore[return-value]  # tuples of StoredValue's fields

    # --- reports ------------------------------------------------------------

    def op_version_rows(self, op_name: str) -> list[dict[str, Any]]:
        """One row per stored version of an op: version, calls, first/last use, source, dependencies."""
        rows = self._fetch(self._statement("op_versions", op_versions_statement), {"op": op_name})
        return [
            {"version": version, "calls": calls, "first_used": first, "last_used": last,
             "source": source, "dependencies": dependencies}
            for version, calls, first, last, source, dependencies in rows
        ]

    def op_names(self) -> list[str]:
        """The names of every op with a stored version or call, sorted."""
        versions, calls = schema.op_versions.c, schema.calls.c
        statement = self._statement("op_names", lambda: union(
            select(versions.op), select(calls.op).distinct()))
        return sorted(name for name, in self._fetch(statement, {}))

    def call_count(self) -> int:
        """How many calls are stored."""
        return int(self._fetch(self._statement("call_count", lambda: select(func.count(schema.calls.c.hid))), {})[0][0])

    def op_call_count(self, op_name: str) -> int:
        """How many calls of this op (all versions) are stored: a count over the (op, version) index."""
        c = schema.calls.c
        statement = self._statement("op_call_count", lambda: select(func.count()).where(c.op == bindparam("op")))
        return int(self._fetch(statement, {"op": op_name})[0][0])

    def snapshot(self) -> Snapshot:
        """What a frame needs of the calls and edges tables, as long strings (see ``statements``),
        read in one read-only transaction so that they agree."""
        statements = [self._statement(name, build) for name, build in (
            ("op_groups_snapshot", op_groups_snapshot_statement),
            ("failed_snapshot", failed_snapshot_statement),
            ("edges_snapshot", lambda: edges_snapshot_statement(self.is_sqlite)))]
        with self._lock:
            cursor = self._connection().cursor()
            cursor.execute("BEGIN" if self.is_sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                groups, failed, edges = [self._fetch(statement, {}) for statement in statements]
            finally:
                cursor.execute("COMMIT")
        edge_calls, refs, ref_cids, out, names = (text or "" for text in edges[0])
        return Snapshot([tuple(row) for row in groups], failed[0][0] or "", edge_calls, refs, ref_cids, out, names)

    def counts(self) -> dict[str, int]:
        """Numbers of ops, calls and values, and the bytes of stored values."""
        c, v = schema.calls.c, schema.values.c
        (ops, calls), = self._fetch(self._statement(
            "count_calls", lambda: select(func.count(c.op.distinct()), func.count())), {})
        (values, size), = self._fetch(self._statement(
            "count_values", lambda: select(func.count(), func.coalesce(func.sum(v.size_bytes), 0))), {})
        return {"ops": ops, "calls": calls, "values": values, "bytes": int(size)}


def _read_only(url: str) -> bool:
    """Whether the URL opens a read-only connection (SQLite ``mode=ro``, PostgreSQL read-only transactions)."""
    return "mode=ro" in url or "default_transaction_read_only" in url
