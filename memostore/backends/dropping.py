"""Dropping calls with everything downstream: a dozen set-based statements, however many calls.

The ids of the calls to drop go into ``memostore_dropping``, a temporary
table of the connection (``schema.scratch``): the calls asked for, by hid,
then every call downstream of their outputs, found by one recursive query.
The calls are read back, and their edges and rows deleted, by
``IN (SELECT id FROM memostore_dropping)``, all in one transaction; IN-lists
of ids would cost statements per 512 calls and per level of dependents, and
a round trip each on PostgreSQL (where the table is ANALYZEd once filled).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from sqlalchemy import ClauseElement, and_, delete, false, func, insert, select, true
from sqlalchemy.schema import CreateTable

from memostore.backends import rows, schema
from memostore.backends.database import Database
from memostore.backends.statements import call_columns, call_ids_statement, in_chunks
from memostore.backends.writes import note_collection

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
    keys = rows.keys(hids)

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
    """Put the ids of the calls with these hid keys into the scratch table; returns how many are stored."""
    seeded = 0
    for width, params in in_chunks(keys):
        statement = db.in_statement("dropping_seed", _seed_statement, width)
        cursor.execute(statement.sql, statement.params(params))
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
    """Every call downstream of the outputs of the calls in the scratch table, added to it."""
    produced, read = schema.edges.alias("produced"), schema.edges.alias("read")
    down = _dropping().cte("down", recursive=True)
    down = down.union(
        select(read.c.call_id).select_from(
            down.join(produced, and_(produced.c.call_id == down.c.id, produced.c.output == true()))
            .join(read, and_(read.c.ref_id == produced.c.ref_id, read.c.output == false()))))
    statement: ClauseElement = insert(schema.dropping).from_select(
        ["id"], select(down.c.id).where(down.c.id.not_in(_dropping())))
    return statement


def _dropping() -> Any:
    """The ids in the scratch table, for ``IN``: it drives the query (a join may scan a whole table instead)."""
    return select(schema.dropping.c.id)


def calls_statement() -> ClauseElement:
    """The rows of the calls in the scratch table (``statements.call_columns``)."""
    statement: ClauseElement = select(*call_columns()).where(schema.calls.c.id.in_(_dropping()))
    return statement


def edges_statement() -> ClauseElement:
    """(call id, output?, name id, ref hid, ref cid) of the calls in the scratch table, in position order."""
    e, r = schema.edges.c, schema.refs.c
    return (select(e.call_id, e.output, e.name_id, r.hid, r.cid)
            .select_from(schema.edges.join(schema.refs, r.id == e.ref_id)).where(e.call_id.in_(_dropping()))
            .order_by(e.call_id, e.output, e.position))
