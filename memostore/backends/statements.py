"""Statements and small pure helpers for ``sql.py``: what to ask, not asking it.

Everything here builds SQLAlchemy Core expressions or shapes rows; only
``sql.py`` executes SQL.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from sqlalchemy import ClauseElement, Integer, Text, and_, bindparam, cast, func, literal_column, select

from memostore.backends import schema
from memostore.backends.base import StoredOutputs
from memostore.errors import SchemaVersionError
from memostore.hashing import HASH_FORMAT

IN_CHUNK = 500  # ids per IN (...) query; under every dialect's parameter limit
BUSY_TIMEOUT_S = 30.0  # SQLite's own wait per attempt
# A read of at least this many ids, and this fraction of a table, scans the table instead of probing.
SCAN_MIN_IDS = 20_000
SCAN_MIN_FRACTION = 0.25


IN_PARAM_NAMES = tuple(f"id_{i}" for i in range(IN_CHUNK))


def in_chunks(ids: Iterable[str], extra: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Parameters for an IN-list statement, IN_CHUNK ids at a time."""
    # Sorted, so probes walk the B-tree in order and reuse cached pages.
    unique = sorted(set(ids))
    for start in range(0, len(unique), IN_CHUNK):
        chunk = unique[start:start + IN_CHUNK]
        # Pad with a repeat of the last id: IN ignores duplicates.
        chunk.extend([chunk[-1]] * (IN_CHUNK - len(chunk)))
        params = dict(zip(IN_PARAM_NAMES, chunk, strict=False))  # a last chunk fills fewer names
        if extra:
            params.update(extra)
        yield params


def group_outputs(rows: list[tuple[Any, ...]]) -> Iterator[tuple[str, str, StoredOutputs, str]]:
    """(hid, cid, outputs, status) per call from rows ordered by call hid and position."""
    current: list[tuple[Any, ...]] = []
    for row in [*rows, None]:
        if current and (row is None or row[0] != current[0][0]):
            hid, cid, status, multi = current[0][:4]
            outputs = [(name, ref_hid, ref_cid) for *_, name, ref_hid, ref_cid in current if name is not None]
            yield hid, cid, StoredOutputs(hid, bool(multi), outputs), status
            current = []
        if row is not None:
            current.append(row)


def find_outputs_statement() -> ClauseElement:
    calls, edges = schema.calls, schema.edges
    ok = calls.c.status == bindparam("ok", "ok")
    by_hid = select(calls.c.hid).where(calls.c.hid == bindparam("hid"), ok).scalar_subquery()
    by_cid = select(calls.c.hid).where(calls.c.cid == bindparam("cid"), ok).limit(1).scalar_subquery()
    produced = and_(edges.c.call_hid == calls.c.hid,
                    edges.c.direction == bindparam("out", schema.DIRECTION_OUT))
    return (
        select(calls.c.hid, calls.c.multi_output, edges.c.name, edges.c.ref_hid, edges.c.ref_cid)
        .select_from(calls.outerjoin(edges, produced))
        .where(calls.c.hid == func.coalesce(by_hid, by_cid))
        .order_by(edges.c.position)
    )


def op_versions_statement() -> ClauseElement:
    versions, calls = schema.op_versions, schema.calls
    joined = versions.outerjoin(
        calls, and_(calls.c.op == versions.c.op, calls.c.version == versions.c.version))
    return (
        select(versions.c.version, func.count(calls.c.hid), versions.c.first_used, versions.c.last_used,
               versions.c.source, versions.c.dependencies)
        .select_from(joined)
        .where(versions.c.op == bindparam("op"))
        .group_by(versions.c.version, versions.c.first_used, versions.c.last_used, versions.c.source,
                  versions.c.dependencies)
        .order_by(versions.c.first_used)
    )


def engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {
            "paramstyle": "named",
            "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S,
                             "isolation_level": None},
        }
    return {}


def check_compatible(meta: dict[str, str], url: str) -> None:
    try:
        stored_schema = int(meta.get("schema_version", schema.SCHEMA_VERSION))
        stored_hash = int(meta.get("hash_format", HASH_FORMAT))
    except ValueError:
        raise SchemaVersionError(
            f"the store at {url} records schema version {meta.get('schema_version')!r} and hash format "
            f"{meta.get('hash_format')!r}, which are not numbers: its memostore_meta table is damaged "
            "or was not written by memostore; run storage.check() or restore the file from a backup"
        ) from None
    if stored_schema > schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store at {url} has schema version {stored_schema}, but this memostore "
            f"reads up to version {schema.SCHEMA_VERSION}; upgrade memostore to open it"
        )
    # An older format is read as is: the ids of the values it hashed correctly did not change,
    # and calls on the few values whose ids did (see hashing's docstring) are computed again.
    if stored_hash > HASH_FORMAT:
        raise SchemaVersionError(
            f"the store at {url} was hashed with format {stored_hash}, this memostore uses "
            f"format {HASH_FORMAT}; its ids would not match: upgrade memostore to open it"
        )


def is_lock_contention(err: Exception) -> bool:
    text = str(err).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    # PostgreSQL: deadlock_detected, serialization_failure, lock_not_available.
    return getattr(err, "sqlstate", None) in {"40P01", "40001", "55P03"}


# --- snapshots: whole tables as a few long strings --------------------------------------------------
# A frame over a large part of a big store reads the calls and edges tables
# whole: what expansion and tables need, not what only a Call shows (timings,
# errors, output order; those are read when a Call is used). Each column
# becomes one concatenated string (hids and cids at a fixed 32 characters,
# names separated by SNAPSHOT_SEPARATOR), so a million rows reach Python as a
# handful of strings that numpy cuts into columns, not a million tuples. One
# aggregate per column: concatenating columns row by row in SQL costs more
# than the aggregates themselves.

SNAPSHOT_SEPARATOR = "\x1f"
# Separators as SQL literals, not parameters (typed Any: SQLAlchemy's stubs expect a str).
_NO_SEPARATOR: Any = literal_column("''")
_FIELD_SEPARATOR: Any = literal_column(f"'{SNAPSHOT_SEPARATOR}'")


def _joined(column: Any, separator: Any = _NO_SEPARATOR) -> Any:
    return func.aggregate_strings(column, separator)


def failed_snapshot_statement() -> ClauseElement:
    """The hids of the failed calls."""
    c = schema.calls.c
    return select(_joined(c.hid).filter(c.status == literal_column("'failed'")))


def op_groups_snapshot_statement() -> ClauseElement:
    """(op, version, hids of its calls) per op version: a scan of the (op, version) index, which holds the hid."""
    c = schema.calls.c
    return select(c.op, c.version, _joined(c.hid)).group_by(c.op, c.version)


def edges_snapshot_statement(is_sqlite: bool) -> ClauseElement:
    """call hids, ref hids, ref cids, 0/1 for in/out, names."""
    e = schema.edges.c
    is_out: Any = e.direction == literal_column(f"'{schema.DIRECTION_OUT}'")
    if not is_sqlite:  # PostgreSQL aggregates text only
        is_out = cast(cast(is_out, Integer), Text)
    return select(_joined(e.call_hid), _joined(e.ref_hid), _joined(e.ref_cid), _joined(is_out),
                  _joined(e.name, _FIELD_SEPARATOR))
