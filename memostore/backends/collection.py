"""What garbage collection under concurrency asks of the database: statements and
row helpers for ``sql.py`` (which executes them), kept apart so they move with
the schema.

The protocol: a flush checks, inside its write transaction, which values its
calls name are not stored and writes them again; a cleanup deletes only inside
a transaction that excludes every flush (SQLite's BEGIN IMMEDIATE; on
PostgreSQL an advisory lock that flushes share and a cleanup holds alone); and
every drop or cleanup changes a token in ``memostore_meta`` that processes read
to forget their caches.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ClauseElement, func, literal, select

from memostore.backends import schema
from memostore.backends.base import WriteBatch

TOKEN_KEY = "collection_token"  # the memostore_meta row every drop and cleanup changes
LOCK_KEY = 0x6D656D6F + 1  # PostgreSQL advisory lock: flushes share it, a cleanup holds it alone


def lock_sql(dialect: Any, exclusive: bool) -> str:
    """PostgreSQL: take the collection lock until the transaction ends."""
    lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    return str(select(lock(literal(LOCK_KEY))).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def named_cids(batch: WriteBatch) -> set[str]:
    """The cids the batch's refs and calls name and its values do not bring."""
    named = set(batch.refs.values())
    named.update(ref.cid for call in batch.calls for refs in (call.inputs, call.outputs) for ref in refs.values())
    named.difference_update(value.cid for value in batch.values)
    return named


def present_values_statement(ids: Any) -> ClauseElement:
    v = schema.values.c
    return select(v.cid).where(v.cid.in_(ids))


def unused_values() -> Any:
    """Values that no ref names (an edge reaches its value through its ref, which a cleanup keeps)."""
    v, r = schema.values.c, schema.refs.c
    return v.cid.not_in(select(r.cid).scalar_subquery())


def new_token_row() -> dict[str, str]:
    return {"key": TOKEN_KEY, "value": uuid.uuid4().hex}


def token_statement() -> ClauseElement:
    m = schema.meta.c
    return select(m.value).where(m.key == literal(TOKEN_KEY))
