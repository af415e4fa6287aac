"""Dropping calls with everything downstream: a dozen set-based statements, however many calls.

The ids of the calls to drop go into ``memostore_dropping``, a temporary
table of the connection (``schema.scratch``): the calls asked for, by hid,
then every call downstream of their outputs, found by one recursive query.
The calls are read back, and their edges and rows deleted, by
``IN (SELECT id FROM memostore_dropping)``, all in one transaction; IN-lists
of ids would cost statements per 512 calls and per level of dependents, and
a round trip each on PostgreSQL (where the table is ANALYZEd once filled).

The rows read back become ``DroppedCall``s, which build their Refs and
dicts when first used: a caller that only counts them, or takes their hids,
does not pay for objects it never looks at (most of the Python time of a
drop, and the collector's afterwards).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import ClauseElement, and_, delete, false, func, insert, select, true
from sqlalchemy.schema import CreateTable

from memostore.backends import rows, schema
from memostore.backends.database import Database
from memostore.backends.statements import IN_CHUNK, call_columns, call_ids_statement, chunk_width
from memostore.backends.writes import note_collection
from memostore.model import Call, LazyCall

T = TypeVar("T")

_CREATE_SQL: dict[str, str] = {}  # dialect name -> DDL


def drop_calls(db: Database, call_hids: Iterable[str], dependents: bool,
               read: Callable[[Any], T]) -> tuple[list[str], T | None]:
    """Delete calls, and with ``dependents`` every call downstream of their outputs, in one transaction.

    Returns the hids that are not stored (then nothing is deleted), and what
    ``read(cursor)`` returned for the calls about to go (``calls_statement``
    and ``edges_statement`` read them).
    """
    hids = set(call_hids)
    if not hids:
        return [], None
    keys = sorted(rows.keys(hids))  # probes walk the hid index in order

    def work(cursor: Any) -> tuple[list[str], T | None]:
        if not db.is_sqlite:
            _execute(db, cursor, "dropping_plans", _plans_statement)
        cursor.execute(_create_sql(db.dialect))
        _clear(db, cursor)  # whatever an earlier use left: only these calls may go
        if _seed(db, cursor, keys) < len(hids):
            found = {row[0] for row in db.fetch_in("call_ids", call_ids_statement, keys, cursor=cursor)}
            missing = sorted(hid for hid in hids if rows.key(hid) not in found)
            if missing:  # (none: a driver that miscounted the rows inserted)
                _clear(db, cursor)
                return missing, None
        _analyze(db, cursor)
        if dependents:
            _execute(db, cursor, "dropping_dependents", _dependents_statement)
            _analyze(db, cursor)
        result = read(cursor)
        note_collection(db, cursor)
        _execute(db, cursor, "dropping_edges", lambda: delete(schema.edges).where(
            schema.edges.c.call_id.in_(_dropping())))
        _execute(db, cursor, "dropping_calls", lambda: delete(schema.calls).where(schema.calls.c.id.in_(_dropping())))
        _clear(db, cursor)
        return [], result

    return db.run(work)


def _create_sql(dialect: Any) -> str:
    """CREATE TEMPORARY TABLE IF NOT EXISTS of the scratch table (DDL is no ``Prepared`` statement)."""
    sql = _CREATE_SQL.get(dialect.name)
    if sql is None:
        sql = _CREATE_SQL[dialect.name] = str(CreateTable(schema.dropping, if_not_exists=True).compile(dialect=dialect))
    return sql


def _seed(db: Database, cursor: Any, keys: list[bytes]) -> int:
    """Put the ids of the calls with these hid keys (sorted, unique) into the scratch table; returns
    how many are stored. The keys are bound by position: see ``Database.in_statement``."""
    seeded = 0
    for start in range(0, len(keys), IN_CHUNK):
        chunk = keys[start:start + IN_CHUNK]
        width = chunk_width(len(chunk))
        chunk.extend([chunk[-1]] * (width - len(chunk)))  # a repeat: IN ignores it
        cursor.execute(db.in_statement("dropping_seed", _seed_statement, width, positional=True).sql, chunk)
        seeded += cursor.rowcount
    return seeded


def _plans_statement() -> ClauseElement:
    """PostgreSQL, for this transaction: probe the indexes from the scratch table, as SQLite does.

    Without statistics of a store autovacuum has not analyzed yet, the planner
    hashed or merged whole tables to drop a few calls; and a recursive query's
    estimate may grow by orders of magnitude, past jit_above_cost: half a
    second compiling (JIT) queries that run in milliseconds.
    """
    settings = {"enable_hashjoin": "off", "enable_mergejoin": "off", "jit": "off"}
    statement: ClauseElement = select(*(func.set_config(name, value, true()) for name, value in settings.items()))
    return statement


def _analyze(db: Database, cursor: Any) -> None:
    """PostgreSQL: count the scratch table's rows for the planner. Autovacuum never sees a
    temporary table, and the planner's guess (thousands of rows) made it scan whole tables
    to drop a few calls; SQLite drives ``IN (SELECT ...)`` from the scratch table anyway."""
    if not db.is_sqlite:
        cursor.execute(f"ANALYZE {schema.dropping.name}")


def _clear(db: Database, cursor: Any) -> None:
    _execute(db, cursor, "dropping_clear", lambda: delete(schema.dropping))


def _execute(db: Database, cursor: Any, key: str, build: Callable[[], ClauseElement]) -> None:
    statement = db.statement(key, build)
    cursor.execute(statement.sql, statement.defaults)


def _seed_statement(ids: list[Any]) -> ClauseElement:
    """The ids of the calls with these hids into the scratch table."""
    c = schema.calls.c
    statement: ClauseElement = insert(schema.dropping).from_select(["id"], select(c.id).where(c.hid.in_(ids)))
    return statement


def _dependents_statement() -> ClauseElement:
    """Every call downstream of the outputs of the calls in the scratch table, added to it.

    The recursion starts from their consumers, not from the calls themselves:
    the calls asked for are not matched against the table they came from.
    """
    produced, read = schema.edges.alias("produced"), schema.edges.alias("read")
    reading = and_(read.c.ref_id == produced.c.ref_id, read.c.output == false())
    first = (select(read.c.call_id).select_from(produced.join(read, reading))
             .where(produced.c.call_id.in_(_dropping()), produced.c.output == true()))
    down = first.cte("down", recursive=True)
    down = down.union(select(read.c.call_id).select_from(
        down.join(produced, and_(produced.c.call_id == down.c.call_id, produced.c.output == true()))
        .join(read, reading)))
    statement: ClauseElement = insert(schema.dropping).from_select(
        ["id"], select(down.c.call_id).where(down.c.call_id.not_in(_dropping())))
    return statement


def _dropping() -> Any:
    """The ids in the scratch table, for ``IN``: it drives the query (a join may scan a whole table instead)."""
    return select(schema.dropping.c.id)


def calls_statement() -> ClauseElement:
    """The rows of the calls in the scratch table (``statements.call_columns``)."""
    statement: ClauseElement = select(*call_columns()).where(schema.calls.c.id.in_(_dropping()))
    return statement


def edges_statement() -> ClauseElement:
    """(call id, output?, name id, ref hid, ref cid, position) of the calls in the scratch table, in no
    order: ``DroppedCalls`` sorts them if its Calls are ever built (an ORDER BY sorts every time)."""
    e, r = schema.edges.c, schema.refs.c
    statement: ClauseElement = (select(e.call_id, e.output, e.name_id, r.hid, r.cid, e.position)
                                .select_from(schema.edges.join(schema.refs, r.id == e.ref_id))
                                .where(e.call_id.in_(_dropping())))
    return statement


_EDGE_ORDER = itemgetter(0, 1, 5)  # call id, output?, position


def dropped_calls(call_rows: list[tuple[Any, ...]], edge_rows: list[tuple[Any, ...]],
                  version: Callable[[int], tuple[str, str]], name: Callable[[int], str]) -> list[Call]:
    """The Calls of rows read by ``calls_statement`` and ``edges_statement``, each built when first used.

    The op versions and names they use are looked up now, inside the drop's
    transaction: the Calls never read the store again.
    """
    versions = {version_id: version(version_id) for version_id in {row[3] for row in call_rows}}
    names = {name_id: name(name_id) for name_id in {row[2] for row in edge_rows}}
    batch = DroppedCalls(call_rows, edge_rows, versions.__getitem__, names.__getitem__)
    return [DroppedCall(batch, position, row[1].hex(), row[6]) for position, row in enumerate(call_rows)]


class DroppedCalls:
    """The rows of the calls one drop deleted; their Calls, all at once, when the first is used."""

    def __init__(self, call_rows: list[tuple[Any, ...]], edge_rows: list[tuple[Any, ...]],
                 version: Callable[[int], tuple[str, str]], name: Callable[[int], str]) -> None:
        self._rows: Any = (call_rows, edge_rows, version, name)
        self._calls: list[Call] | None = None

    def call(self, position: int) -> Call:
        """The plain Call of the row at ``position``."""
        if self._calls is None:
            call_rows, edge_rows, version, name = self._rows
            edges = [row[:5] for row in sorted(edge_rows, key=_EDGE_ORDER)]
            self._calls = rows.calls_of_rows(call_rows, edges, version, name)
        return self._calls[position]


class DroppedCall(LazyCall):
    """A Call deleted by ``drop_calls``: ``hid`` and ``started_at`` at once, every other field from
    its batch's rows on first use (as a plain Call has them). Pickling gives a plain Call."""

    __slots__ = ()

    def __init__(self, batch: DroppedCalls, position: int, hid: str, started_at: float) -> None:
        self._batch = batch
        self._position = position
        self.hid = hid
        self.started_at = started_at

    def __getattr__(self, name: str) -> Any:
        if name not in Call.__slots__:
            raise AttributeError(name)
        return self._fill(name)
