"""Writing and deleting rows: each operation one transaction, retried while the database is locked.

Writes and cleanups follow the protocol of ``collection.py``: a flush checks
inside its transaction which values it names are gone; a cleanup runs alone.
"""

from __future__ import annotations

import importlib
import itertools
import time
from typing import Any, Callable, Iterable

from sqlalchemy import bindparam, delete, literal_column, or_, select, update

from memostore.backends import collection, rows, schema
from memostore.backends.base import WriteBatch
from memostore.backends.database import Database
from memostore.backends.statements import in_chunks, last_ids_statement
from memostore.backends.vocabulary import Vocabulary
from memostore.model import Call


def write_batch(db: Database, vocabulary: Vocabulary, batch: WriteBatch,
                complete: Callable[[set[str]], WriteBatch] | None = None) -> None:
    """Insert every row of ``batch`` in one transaction; existing rows are kept.

    A value row already stored with other bytes is replaced (see
    ``value_upsert``): its content id says the bytes written now are right.
    An op version already stored keeps its source and first use and gets the
    batch's last use. A call stored as failed is replaced by the same call
    written again (a retry); a call stored as ok is never replaced. With
    ``complete``, the rows written are ``complete(cids)``, where ``cids`` are
    the values the batch's refs and calls name that are neither stored nor in
    the batch, found inside the transaction, where no cleanup can run.
    """
    if not batch:
        return
    errors = any(call.error is not None for call in batch.calls)
    values, refs, calls, edges = bulk_inserts(db, errors)
    flags = rows.FLAGS_SQLITE if db.is_sqlite else rows.FLAGS_BOOL

    def work(cursor: Any) -> Any:
        rows_of = batch
        if complete is not None:
            lock_collection(db, cursor, exclusive=False)
            rows_of = complete(missing_values(db, cursor, batch))
        ids = vocabulary.ids_for(cursor, rows_of)
        last_ids = db.statement("last_ids", last_ids_statement)
        before = db.fetch(last_ids, cursor=cursor)[0]
        # Rows in a fixed order of keys keep concurrent PostgreSQL writers deadlock-free.
        db.executemany(cursor, values, rows.value_rows(rows_of.values))
        ref_rows = rows.ref_rows(rows_of.refs)
        db.executemany(cursor, refs, ref_rows)
        in_order = rows.by_hid(rows_of.calls)  # each of the two below then sorts them in one pass
        call_rows = rows.call_rows(in_order, ids.versions, rows_of.run_id, flags, errors)
        db.executemany(cursor, calls, call_rows)
        if rows_of.calls:
            call_ids, ref_ids = new_ids(db, cursor, last_ids, before, rows_of.calls, (call_rows, ref_rows))
            db.executemany(cursor, edges, rows.edge_rows(in_order, ids.names, call_ids, ref_ids, flags))
        return ids

    vocabulary.remember(db.run(work))


def bulk_inserts(db: Database, errors: bool) -> tuple[Any, Any, Any, Any]:
    """The INSERTs of a flush's value, ref, call and edge rows; ``errors``: some call has an error.

    Calls without an error (all, commonly) leave the error columns to their
    default, NULL: sqlite3 binds a None parameter only after a failed adapter
    lookup (see ``rows.bound_key``).
    """
    calls = db.insert(schema.calls, ["hid"], rows.CALL_COLUMNS if errors else rows.OK_CALL_COLUMNS,
                      update=rows.CALL_COLUMNS[1:], positional=True,
                      only_if=schema.calls.c.status == literal_column(f"'{schema.STATUS_FAILED}'"))
    return (value_upsert(db), db.insert(schema.refs, ["hid"], rows.REF_COLUMNS, positional=True), calls,
            db.insert(schema.edges, ["call_id", "output", "name_id"], rows.EDGE_COLUMNS, positional=True))


def new_ids(db: Database, cursor: Any, last_ids: Any, before: tuple[int, int], calls: list[Call],
            sent: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]) -> tuple[dict[str, int], dict[str, int]]:
    """hex hid -> id of ``calls`` and of the refs they name, after the call rows and the ref rows
    ``sent`` were inserted in this transaction, where the largest ids were ``before``.

    SQLite gives each new row the largest id plus one, and a write transaction
    there is the only writer: if the largest ids grew by the number of rows
    sent, every row is new, with the ids ``before + 1`` on in row order, and
    nothing needs to be read back. PostgreSQL's ids come from sequences other
    writers share: read back (see ``ids_by_hid``).
    """
    after = db.fetch(last_ids, cursor=cursor)[0] if db.is_sqlite else (-1, -1)
    new = [rows_sent if db.is_sqlite and last - first == len(rows_sent) else None
           for last, first, rows_sent in zip(after, before, sent, strict=True)]
    return (ids_by_hid(db, cursor, schema.calls, before[0], {call.hid for call in calls}, new[0]),
            ids_by_hid(db, cursor, schema.refs, before[1], rows.edge_ref_hids(calls), new[1]))


def ids_by_hid(db: Database, cursor: Any, table: Any, after: int, hids: set[str],
               inserted: list[tuple[Any, ...]] | None = None) -> dict[str, int]:
    """hex hid -> id of the rows of ``table`` (calls or refs) with these hids, in ``cursor``'s transaction.

    The rows this transaction inserted have ids above ``after`` (the largest id
    before it, see ``last_ids_statement``): ``inserted``, when the caller knows
    they all got the ids ``after + 1`` on in their order (rows whose first
    column is the 16-byte hid), else one range scan of the primary key reads them,
    where a probe of the hid index per edge would cost far more.
    Rows stored before (another process's, or an earlier flush's) are read by key.
    Other writers' rows in that range (PostgreSQL) only add unused entries.
    """
    t = table.c
    if inserted is not None:
        found = {row[0].hex(): row_id for row, row_id in zip(inserted, itertools.count(after + 1))}
    else:
        found = {hid.hex(): row_id for hid, row_id in db.fetch(db.statement(
            f"new_ids:{table.name}", lambda: select(t.hid, t.id).where(t.id > bindparam("after"))),
            {"after": after}, cursor=cursor)}
    stored = hids - found.keys()
    if stored:
        key = f"ids:{table.name}"
        found.update((hid.hex(), row_id) for hid, row_id in db.fetch_in(
            key, lambda ids: select(t.hid, t.id).where(t.hid.in_(ids)), rows.keys(stored), cursor=cursor))
    return found


def value_upsert(db: Database) -> Any:
    """The INSERT of value rows that replaces a stored row whose bytes differ.

    A value is written only by a process that holds it in memory, under the
    content id it hashed there; a stored row with other bytes under that id
    is damaged (or planted) and must not outlive the write, or the value
    could never be served again without ``check(repair=True)``. Rows with the
    same bytes are left alone, so rewriting a stored value costs no write.
    (A pickle may have other bytes in another process: it is replaced by an
    equally good one.)
    """
    v = schema.values.c
    dialect = importlib.import_module(f"sqlalchemy.dialects.{'sqlite' if db.is_sqlite else 'postgresql'}")
    excluded = dialect.insert(schema.values).excluded  # the dialect of this store only (see Database.insert)
    differs = or_(v.format != excluded.format, v.size_bytes != excluded.size_bytes,
                  v.inline_data.is_distinct_from(excluded.inline_data))
    columns = rows.VALUE_COLUMNS
    return db.insert(schema.values, ["cid"], columns, update=columns[1:], only_if=differs, positional=True)


def lock_collection(db: Database, cursor: Any, exclusive: bool) -> None:
    """See ``collection``: SQLite's BEGIN IMMEDIATE already serializes all writes."""
    if not db.is_sqlite:
        cursor.execute(collection.lock_sql(db.dialect, exclusive))


def missing_values(db: Database, cursor: Any, batch: WriteBatch) -> set[str]:
    """The cids the batch's refs and calls name that are neither stored nor in the batch."""
    named = collection.named_cids(batch)
    if not named:
        return named
    found = db.fetch_in("present_values", collection.present_values_statement, rows.keys(named), cursor=cursor)
    named.difference_update(bytes(row[0]).hex() for row in found)
    return named


def note_collection(db: Database, cursor: Any) -> None:
    """Change the collection token (in the caller's transaction): other processes forget their caches."""
    token = db.insert(schema.meta, ["key"], ["key", "value"], update=["value"])
    cursor.execute(token.sql, token.params(collection.new_token_row()))


def collection_token(db: Database) -> str:
    """A token that changes whenever calls are dropped or values deleted, by any process."""
    found = db.fetch(db.statement("collection_token", collection.token_statement))
    return str(found[0][0]) if found else ""


def delete_unreferenced(db: Database, inside: Callable[[list[str], set[str]], None] | None = None,
                        notice_s: float = 0.0) -> tuple[int, dict[str, int], list[str]]:
    """Delete refs no call edge uses, then values no ref uses.

    With ``notice_s``, first change the collection token and wait that long,
    so that other processes forget their caches. Then runs holding the write
    lock (SQLite) or the collection lock alone (PostgreSQL), so no flush
    interleaves. ``inside(blob cids deleted, blob cids still stored)`` runs
    before COMMIT, still holding the lock (the blob store removes files
    there). Returns the number of refs deleted, cid -> size of the values
    deleted, and the blob cids among them.
    """
    if notice_s:
        db.run(lambda cursor: note_collection(db, cursor))
        time.sleep(notice_s)
    r, v, e = schema.refs.c, schema.values.c, schema.edges.c
    orphan_refs = db.statement("orphan_refs", lambda: delete(schema.refs).where(
        r.id.not_in(select(e.ref_id).scalar_subquery())))
    unused = collection.unused_values()
    blob_cids = db.statement("blob_cids", lambda: select(v.cid).where(v.inline_data.is_(None)))
    find_values = db.statement("orphan_values", lambda: select(
        v.cid, v.size_bytes, v.inline_data.is_(None)).where(unused))
    delete_values = db.statement("delete_orphan_values", lambda: delete(schema.values).where(unused))

    def work(cursor: Any) -> tuple[int, dict[str, int], list[str]]:
        lock_collection(db, cursor, exclusive=True)
        note_collection(db, cursor)
        cursor.execute(orphan_refs.sql, orphan_refs.defaults)
        refs_deleted = cursor.rowcount
        cursor.execute(find_values.sql, find_values.defaults)
        found = cursor.fetchall()
        cursor.execute(delete_values.sql, delete_values.defaults)
        deleted = [bytes(cid).hex() for cid, _, in_blob in found if in_blob]
        if inside is not None:
            inside(deleted, {bytes(row[0]).hex() for row in db.fetch(blob_cids, cursor=cursor)})
        return refs_deleted, {bytes(cid).hex(): size for cid, size, _ in found}, deleted

    return db.run(work)


# --- claims ------------------------------------------------------------------------------------

def claim(db: Database, call_hids: Iterable[str], owner: str, ttl_s: float) -> set[str]:
    """Claim these calls unless someone else holds an unexpired claim; returns those ``owner`` holds."""
    keys = sorted(rows.keys(call_hids))
    k = schema.claims.c
    insert = db.insert(schema.claims, ["call_hid"], ["call_hid", "owner", "expires_at"])

    def work(cursor: Any) -> set[str]:
        now = time.time()
        for width, params in in_chunks(keys, {"now": now}):
            expired = db.in_statement("claims_expired", lambda ids: delete(schema.claims).where(
                k.call_hid.in_(ids), k.expires_at < bindparam("now")), width)
            cursor.execute(expired.sql, params)
        cursor.executemany(insert.sql, [{"call_hid": key, "owner": owner, "expires_at": now + ttl_s} for key in keys])
        held = db.fetch_in("claims_held", lambda ids: select(k.call_hid).where(
            k.call_hid.in_(ids), k.owner == bindparam("owner")), keys, {"owner": owner}, cursor=cursor)
        return {bytes(row[0]).hex() for row in held}

    return db.run(work) if keys else set()


def renew_claims(db: Database, owner: str, ttl_s: float) -> None:
    """Push back the expiry of every claim ``owner`` holds."""
    k = schema.claims.c
    renew = db.statement("claims_renew", lambda: update(schema.claims).where(
        k.owner == bindparam("owner")).values(expires_at=bindparam("expires_at")))
    db.run(lambda cursor: cursor.execute(renew.sql, {"owner": owner, "expires_at": time.time() + ttl_s}))


def release_claims(db: Database, owner: str) -> None:
    """Drop every claim ``owner`` holds (absent ones are fine)."""
    release = db.statement("claims_release", lambda: delete(schema.claims).where(
        schema.claims.c.owner == bindparam("owner")))
    db.run(lambda cursor: cursor.execute(release.sql, {"owner": owner}))
