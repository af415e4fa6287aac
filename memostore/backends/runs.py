"""Runs in the database: a row per outermost block or map, and the calls it computed or found.

A run's row is written when the run first commits a call (so a run that
dies keeps its row, with no end) or, for a run that only found stored
calls, when it ends. The calls it computed point at it (``calls.run_id``);
the history ids of the calls it found stored are one packed value on its
row (``runs.loaded``, 16 bytes a call), so finding a million calls costs
one row, not a million.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import bindparam, insert, select, update

from memostore.backends import schema
from memostore.backends.database import Database
from memostore.backends.rows import keys
from memostore.backends.schema import HASH_BYTES

RUN_COLUMNS = ("id", "kind", "label", "tags", "host", "user", "pid", "started_at", "finished_at",
               "computed", "hits", "failed")


def pack_hids(hex_ids: Iterable[str]) -> bytes:
    """History ids as one value of 16 bytes each."""
    return b"".join(bytes.fromhex(hex_id) for hex_id in hex_ids)


def unpack_hids(packed: bytes | memoryview | None) -> list[str]:
    """The history ids of a ``pack_hids`` value (None: none)."""
    data = b"" if packed is None else bytes(packed)
    return [data[i:i + HASH_BYTES].hex() for i in range(0, len(data), HASH_BYTES)]


def insert_run(db: Database, row: dict[str, Any]) -> int:
    """Store a new run (``row`` has every column but ``id``); returns its id."""
    r = schema.runs

    def work(cursor: Any) -> int:
        statement = db.statement("insert_run", lambda: insert(r).returning(r.c.id), list(row))
        return int(db.fetch(statement, row, cursor=cursor)[0][0])

    return db.run(work)


def finish_run(db: Database, run_id: int, finished_at: float, counts: tuple[int, int, int],
               loaded: bytes | None) -> None:
    """Record a run's end: when, what it computed, found and saw fail, and the calls it found."""
    c = schema.runs.c
    statement = db.statement("finish_run", lambda: update(schema.runs).where(c.id == _param("run_id")).values(
        finished_at=_param("finished_at"), computed=_param("computed"), hits=_param("hits"),
        failed=_param("failed"), loaded=_param("loaded")))
    computed, hits, failed = counts
    params = {"run_id": run_id, "finished_at": finished_at, "computed": computed, "hits": hits,
              "failed": failed, "loaded": loaded}
    db.run(lambda cursor: db.executemany(cursor, statement, [params]))


def run_rows(db: Database) -> list[dict[str, Any]]:
    """Every stored run, oldest first, as dicts of ``RUN_COLUMNS`` (loaded calls left out)."""
    r = schema.runs.c
    statement = db.statement("run_rows", lambda: select(*(r[name] for name in RUN_COLUMNS)).order_by(r.id))
    return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in db.fetch(statement)]


def run_call_hids(db: Database, run_id: int) -> tuple[list[str], list[str]]:
    """(hids of the stored calls the run computed or recorded, hids of the calls it found stored)."""
    c, r = schema.calls.c, schema.runs.c
    computed = db.fetch(db.statement("run_calls", lambda: select(c.hid).where(c.run_id == _param("run_id"))),
                        {"run_id": run_id})
    loaded = db.fetch(db.statement("run_loaded", lambda: select(r.loaded).where(r.id == _param("run_id"))),
                      {"run_id": run_id})
    return [hid.hex() for hid, in computed], unpack_hids(loaded[0][0] if loaded else None)


def call_run_ids(db: Database, call_hids: Iterable[str]) -> dict[str, int]:
    """call hid -> the id of the run that computed it, for the stored calls among these that have one."""
    c = schema.calls.c
    found = db.fetch_in("call_runs", lambda ids: select(c.hid, c.run_id).where(c.hid.in_(ids)), keys(call_hids))
    return {hid.hex(): run_id for hid, run_id in found if run_id is not None}


def _param(name: str) -> Any:
    return bindparam(name)
