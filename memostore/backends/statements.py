"""Statements and small pure helpers for the SQL store: what to ask, not asking it.

Everything here builds SQLAlchemy Core expressions or shapes parameters;
``database.py`` executes them.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from sqlalchemy import (
    ClauseElement,
    Integer,
    LargeBinary,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    select,
    true,
)

from memostore.backends import schema

IN_CHUNK = 512  # ids per IN (...) query; under every dialect's parameter limit
BUSY_TIMEOUT_S = 30.0  # SQLite's own wait per attempt
# A read of at least this many ids, and this fraction of a table, scans the table instead of probing.
SCAN_MIN_IDS = 20_000
SCAN_MIN_FRACTION = 0.25

_PARAM_NAMES = tuple(f"id_{i}" for i in range(IN_CHUNK))


def chunk_width(count: int) -> int:
    """The IN-list width for ``count`` ids: the next power of two, at most IN_CHUNK.

    One id is one equality probe, not a list padded to a fixed width; a few
    widths keep the number of compiled statements small.
    """
    width = 1
    while width < count and width < IN_CHUNK:
        width *= 2
    return width


def in_chunks(ids: Iterable[Any], extra: dict[str, Any] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(width, parameters) for an IN-list statement, IN_CHUNK ids at a time."""
    # Sorted, so probes walk the B-tree in order and reuse cached pages. Binary ids are bound as
    # bytearrays: sqlite3 binds one as it is, where it asks a bytes object for adapters first (two
    # failed attribute lookups that format their error messages, more than a B-tree probe costs).
    unique = sorted(set(ids))
    if len(unique) == 1:  # the common single lookup: one equality probe
        only = bytearray(unique[0]) if type(unique[0]) is bytes else unique[0]
        yield 1, {"id_0": only, **extra} if extra else {"id_0": only}
        return
    for start in range(0, len(unique), IN_CHUNK):
        chunk = [bytearray(i) if type(i) is bytes else i for i in unique[start:start + IN_CHUNK]]
        width = chunk_width(len(chunk))
        # Pad with a repeat of the last id: IN ignores duplicates.
        chunk.extend([chunk[-1]] * (width - len(chunk)))
        params = dict(zip(_PARAM_NAMES, chunk, strict=False))
        if extra:
            params.update(extra)
        yield width, params


def engine_options(url: str) -> dict[str, Any]:
    """create_engine options: SQLite in autocommit, waiting BUSY_TIMEOUT_S for locks."""
    if url.startswith("sqlite"):
        return {
            "paramstyle": "named",
            "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S,
                             "isolation_level": None},
        }
    return {}


def is_lock_contention(err: Exception) -> bool:
    """Whether ``err`` says another writer holds a lock (worth retrying)."""
    text = str(err).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    # PostgreSQL: deadlock_detected, serialization_failure, lock_not_available.
    return getattr(err, "sqlstate", None) in {"40P01", "40001", "55P03"}


# --- the call path -------------------------------------------------------------------------------

def _outputs_join() -> Any:
    c, e, r = schema.calls.c, schema.edges.c, schema.refs.c
    return (schema.calls.outerjoin(schema.edges, and_(e.call_id == c.id, e.output == true()))
            .outerjoin(schema.refs, r.id == e.ref_id))


def find_outputs_statement() -> ClauseElement:
    """The outputs of the ok call with hid ``:hid``, else of one with cid ``:cid``:
    (call hid, multi_output, name id, ref hid, ref cid, position), unordered.

    Two index probes find the call (all a new call costs); no SQL sorter: the
    few output rows of a hit are put in order by the caller.
    """
    c, e, r = schema.calls.c, schema.edges.c, schema.refs.c
    ok = c.status == literal_column(f"'{schema.STATUS_OK}'")
    by_hid = select(c.id).where(c.hid == bindparam("hid"), ok).scalar_subquery()
    by_cid = select(c.id).where(c.cid == bindparam("cid"), ok).limit(1).scalar_subquery()
    return (select(c.hid, c.multi_output, e.name_id, r.hid, r.cid, e.position).select_from(_outputs_join())
            .where(c.id == func.coalesce(by_hid, by_cid)))


def last_ids_statement() -> ClauseElement:
    """The largest id of the calls and of the refs tables (0 when empty): a flush reads the ids
    of the rows it adds as those above (see ``writes.ids_by_hid``)."""
    c, r = schema.calls.c, schema.refs.c
    return select(func.coalesce(select(func.max(c.id)).scalar_subquery(), 0),
                  func.coalesce(select(func.max(r.id)).scalar_subquery(), 0))


def find_many_statement(by_cid: bool) -> Any:
    """``build(ids)`` for the calls whose hid (or cid) is among ids, with their outputs."""
    c, e, r = schema.calls.c, schema.edges.c, schema.refs.c
    column = c.cid if by_cid else c.hid
    return lambda ids: (
        select(c.hid, c.cid, c.status, c.multi_output, e.name_id, r.hid, r.cid).select_from(_outputs_join())
        .where(column.in_(ids)).order_by(c.hid, e.position))


def group_outputs(rows: list[tuple[Any, ...]], name_of: Any) -> Iterator[tuple[bytes, bytes, Any, str]]:
    """(hid, cid, outputs, status) per call from rows ordered by call hid and position.

    ``outputs`` is a ``StoredOutputs``-shaped tuple ``(hid, multi, [(name, ref hid, ref cid)])`` in hex.
    """
    current: list[tuple[Any, ...]] = []
    for row in [*rows, None]:
        if current and (row is None or row[0] != current[0][0]):
            hid, cid, status, multi = current[0][:4]
            outputs = [(name_of(name_id), ref_hid.hex(), ref_cid.hex())
                       for *_, name_id, ref_hid, ref_cid in current if name_id is not None]
            yield hid, cid, (hid.hex(), bool(multi), outputs), status
            current = []
        if row is not None:
            current.append(row)


# --- reads ---------------------------------------------------------------------------------------

def all_values_statement() -> Any:
    """Value rows (cid, format, inline bytes, size), all of them."""
    v = schema.values.c
    return select(v.cid, v.format, v.inline_data, v.size_bytes)


def values_statement(ids: list[Any]) -> ClauseElement:
    """Value rows (cid, format, inline bytes, size) by cid."""
    statement: ClauseElement = all_values_statement().where(schema.values.c.cid.in_(ids))
    return statement


def ref_cids_statement(ids: list[Any]) -> ClauseElement:
    """(hid, cid) of refs by hid."""
    r = schema.refs.c
    return select(r.hid, r.cid).where(r.hid.in_(ids))


def _call_and_edge_columns(its_edges: Any, its_refs: Any) -> list[Any]:
    c = schema.calls.c
    return [c.id, c.hid, c.cid, c.op_version_id, c.status, c.multi_output, c.started_at, c.duration_s,
            c.error_type, c.error_message, c.error_traceback, its_edges.c.output, its_edges.c.name_id,
            its_refs.c.hid, its_refs.c.cid]


def _calls_with_edges() -> Any:
    """Calls joined with each of their edges: the call's columns (as ``call_rows_statement``),
    then (output?, name id, ref hid, ref cid) of one edge, in edge order."""
    c = schema.calls.c
    its_edges = schema.edges.alias("its_edges")
    its_refs = schema.refs.alias("its_refs")
    joined = schema.calls.outerjoin(its_edges, its_edges.c.call_id == c.id).outerjoin(
        its_refs, its_refs.c.id == its_edges.c.ref_id)
    return (select(*_call_and_edge_columns(its_edges, its_refs))
            .select_from(joined).order_by(c.id, its_edges.c.output, its_edges.c.position))


def _id_pair(hid: Any, cid: Any) -> Any:
    """A row's hid and cid as one 32-byte value: a result's columns, not its joins, are most of
    what a single lookup costs the driver (SQLite's ``||`` gives text, cast back to bytes)."""
    return cast(hid.concat(cid), LargeBinary)


# A single lookup's row packs small columns into one integer each: a value returned costs the
# driver about as much as a join (each of its edges repeats its call's columns).
OUTPUT_ORDER = 2**32  # (output?, position) as output? * OUTPUT_ORDER + position: sorts as the pair
FAILED_FLAG, MULTI_OUTPUT_FLAG = 2, 1  # a call's status and multi_output as one integer of flags


def calls_of_ref_statement(output: bool, errors: bool) -> ClauseElement:
    """The calls that read or (``output``) wrote the one ref with hid ``:hid``, one row per edge of
    each call, unordered (sorting a few rows costs less than SQL's sorter), in plain joins from that
    ref: (call hid + cid, output? * OUTPUT_ORDER + position, op version id, FAILED_FLAG |
    MULTI_OUTPUT_FLAG flags, started_at, duration_s, name id, ref hid + cid), so that rows sort as
    tuples in call order, then inputs before outputs, by position; then with ``errors``
    the call's error type, message and traceback (NULL for ok calls, so only failed calls need them)."""
    c = schema.calls.c
    ref, touching = schema.refs.alias("ref"), schema.edges.alias("touching")
    its_edges, its_refs = schema.edges.alias("its_edges"), schema.refs.alias("its_refs")
    direction = touching.c.output == (true() if output else false())
    joined = (ref.join(touching, and_(touching.c.ref_id == ref.c.id, direction))
              .join(schema.calls, c.id == touching.c.call_id)
              .join(its_edges, its_edges.c.call_id == c.id)
              .join(its_refs, its_refs.c.id == its_edges.c.ref_id))
    # Constants as SQL text: the statement binds only ``:hid``, by position.
    failed: Any = literal_column(f"'{schema.STATUS_FAILED}'")
    flags = (case((c.status == failed, literal_column(str(FAILED_FLAG))), else_=literal_column("0"))
             + cast(c.multi_output, Integer))
    order = cast(its_edges.c.output, Integer) * literal_column(str(OUTPUT_ORDER)) + its_edges.c.position
    columns = [_id_pair(c.hid, c.cid), order, c.op_version_id, flags, c.started_at, c.duration_s,
               its_edges.c.name_id, _id_pair(its_refs.c.hid, its_refs.c.cid)]
    if errors:
        columns += [c.error_type, c.error_message, c.error_traceback]
    return select(*columns).select_from(joined).where(ref.c.hid == bindparam("hid"))


def calls_of_refs_statement(ids: list[Any]) -> ClauseElement:
    """The calls that read or wrote (``:output``) refs by hid, one row per edge of each call
    (see ``_calls_with_edges``)."""
    e, r = schema.edges.c, schema.refs.c
    touching = (select(e.call_id).select_from(schema.edges.join(schema.refs, r.id == e.ref_id))
                .where(r.hid.in_(ids), e.output == bindparam("output")))
    statement: ClauseElement = _calls_with_edges().where(schema.calls.c.id.in_(touching))
    return statement


def call_columns() -> list[Any]:
    """A call row's columns: id first, then ``rows.call_record``'s."""
    c = schema.calls.c
    return [c.id, c.hid, c.cid, c.op_version_id, c.status, c.multi_output, c.started_at, c.duration_s,
            c.error_type, c.error_message, c.error_traceback]


def call_rows_statement(ids: list[Any]) -> ClauseElement:
    """Call rows (``call_columns``) by hid."""
    return select(*call_columns()).where(schema.calls.c.hid.in_(ids))


def call_ids_statement(ids: list[Any]) -> ClauseElement:
    """(hid, id) of calls by hid."""
    c = schema.calls.c
    return select(c.hid, c.id).where(c.hid.in_(ids))


def call_edges_statement(ids: list[Any]) -> ClauseElement:
    """(call id, output?, name id, ref hid, ref cid) of calls by id, in position order."""
    e, r = schema.edges.c, schema.refs.c
    return (select(e.call_id, e.output, e.name_id, r.hid, r.cid)
            .select_from(schema.edges.join(schema.refs, r.id == e.ref_id))
            .where(e.call_id.in_(ids)).order_by(e.call_id, e.output, e.position))


def ref_edges_statement(ids: list[Any]) -> ClauseElement:
    """(call hid, name id, ref hid) of the edges reading or writing (``:output``) refs by hid."""
    c, e, r = schema.calls.c, schema.edges.c, schema.refs.c
    joined = schema.refs.join(schema.edges, and_(e.ref_id == r.id, e.output == bindparam("output"))).join(
        schema.calls, c.id == e.call_id)
    return select(c.hid, e.name_id, r.hid).select_from(joined).where(r.hid.in_(ids))


def _versions_of_ops() -> Any:
    v, o = schema.op_versions.c, schema.ops.c
    return schema.op_versions.join(schema.ops, o.id == v.op_id)


def op_call_hids_statement(ids: list[Any]) -> ClauseElement:
    """Hids of the calls of ops by name bytes."""
    c, v, o = schema.calls.c, schema.op_versions.c, schema.ops.c
    return (select(c.hid).select_from(_versions_of_ops().join(schema.calls, c.op_version_id == v.id))
            .where(o.name.in_(ids)))


def op_call_count_statement() -> ClauseElement:
    """How many calls the op ``:op`` (name bytes) has, all versions."""
    c, v, o = schema.calls.c, schema.op_versions.c, schema.ops.c
    return (select(func.count()).select_from(_versions_of_ops().join(schema.calls, c.op_version_id == v.id))
            .where(o.name == bindparam("op")))


def versions_statement() -> ClauseElement:
    """(op version id, op name bytes, version bytes) of every op version."""
    v, o = schema.op_versions.c, schema.ops.c
    return select(v.id, o.name, v.version).select_from(_versions_of_ops())


def op_versions_statement() -> ClauseElement:
    """One row per version of ``:op``: version, calls, first and last use, source, dependencies."""
    v, o, c = schema.op_versions.c, schema.ops.c, schema.calls.c
    return (
        select(v.version, func.count(c.id), v.first_used, v.last_used, v.source, v.dependencies)
        .select_from(_versions_of_ops().outerjoin(schema.calls, c.op_version_id == v.id))
        .where(o.name == bindparam("op"))
        .group_by(v.id, v.version, v.first_used, v.last_used, v.source, v.dependencies)
        .order_by(v.first_used)
    )


def op_version_names_statement() -> ClauseElement:
    """The versions of ``:op``, without counting their calls (which a store of millions takes a while to)."""
    v, o = schema.op_versions.c, schema.ops.c
    return select(v.version).select_from(_versions_of_ops()).where(o.name == bindparam("op"))


def counts_statement() -> ClauseElement:
    """(ops with calls, calls)."""
    c, v = schema.calls.c, schema.op_versions.c
    return select(func.count(v.op_id.distinct()), func.count()).select_from(
        schema.calls.join(schema.op_versions, v.id == c.op_version_id))


# --- snapshots: whole tables as a few long strings ---------------------------------------------
# A frame over a large part of a big store reads the calls, edges and refs
# tables whole: what expansion and tables need, not what only a Call shows
# (timings, errors, output order). Each column becomes one string (ids as
# decimal text, hids as concatenated 16-byte keys, flags as 0/1 characters),
# so a million rows reach Python as a handful of strings that numpy cuts
# into columns, not a million tuples. Names and versions come as rows of
# their small tables, so they may hold any character.

def _ints(column: Any, is_sqlite: bool) -> Any:
    separator: Any = literal_column("','")
    return func.group_concat(column, separator) if is_sqlite else func.string_agg(cast(column, Text), separator)


def _flags(condition: Any, is_sqlite: bool) -> Any:
    if is_sqlite:
        return func.group_concat(condition, literal_column("''"))
    return func.string_agg(cast(cast(condition, Integer), Text), literal_column("''"))


def _keys(column: Any, is_sqlite: bool) -> Any:
    if is_sqlite:  # group_concat keeps a blob's bytes; the cast returns them as a blob
        return cast(func.group_concat(column, literal_column("''")), LargeBinary)
    return func.string_agg(column, literal_column("''::bytea"))


SNAPSHOT_SAMPLES = 5  # rows probed to check that a table was read in id order


def snapshot_statements(is_sqlite: bool) -> dict[str, ClauseElement]:
    """The statements of one snapshot, by name. ``spans`` gives the lowest and highest id and the
    number of rows of the calls and refs tables: where the ids run without gaps, their columns are
    not read (``calls``, ``refs``; ``*_sample`` probes a few rows to check the scan went in id
    order), else they come first, in the same scan as the rest of their row (``calls_and_ids``,
    ``refs_and_ids``). An edge's name and direction come as one number,
    ``name_id * 2 + output``."""
    c, e, r, n = schema.calls.c, schema.edges.c, schema.refs.c, schema.names.c
    failed = c.status == literal_column(f"'{schema.STATUS_FAILED}'")
    kind = e.name_id * 2 + (e.output if is_sqlite else cast(e.output, Integer))
    calls = (_keys(c.hid, is_sqlite), _ints(c.op_version_id, is_sqlite), _flags(failed, is_sqlite))
    refs = (_keys(r.hid, is_sqlite), _keys(r.cid, is_sqlite))
    # In key order (SQLite would scan the smaller index by ref): a frame then places them without a sort.
    edges = select(e.call_id, e.ref_id, kind.label("kind")).order_by(e.call_id, e.output, e.name_id).subquery()
    return {
        "versions": versions_statement(),
        "names": select(n.id, n.name),
        "spans": select(*_span(schema.calls), *_span(schema.refs)),
        "calls": select(*calls),
        "calls_and_ids": select(_ints(c.id, is_sqlite), *calls),
        "edges": select(*(_ints(column, is_sqlite) for column in edges.c)),
        "refs": select(*refs),
        "refs_and_ids": select(_ints(r.id, is_sqlite), *refs),
        **{table.name.removeprefix("memostore_") + "_sample": select(table.c.id, table.c.hid).where(
            table.c.id.in_([bindparam(f"id_{i}") for i in range(SNAPSHOT_SAMPLES)]))
           for table in (schema.calls, schema.refs)},
    }


def _span(table: Any) -> Iterator[Any]:
    """Scalar subqueries: each alone, SQLite counts a table's rows from its B-tree's pages."""
    yield select(func.min(table.c.id)).scalar_subquery()
    yield select(func.max(table.c.id)).scalar_subquery()
    yield select(func.count()).select_from(table).scalar_subquery()


def _joined_text(column: Any, is_sqlite: bool) -> Any:
    """Text values joined by the unit separator (\x1f), which no format name holds."""
    if is_sqlite:
        return func.group_concat(column, func.char(31))
    return func.string_agg(column, func.chr(31))


def value_table_statements(is_sqlite: bool) -> dict[str, ClauseElement]:
    """The statements of one ``ValueTable``: the size of its inline bytes, then the table."""
    v = schema.values.c
    length = func.length(v.inline_data) if is_sqlite else func.octet_length(v.inline_data)
    return {
        "inline_bytes": select(func.coalesce(func.sum(length), 0)),
        "table": select(_keys(v.cid, is_sqlite), _joined_text(v.format, is_sqlite), _ints(v.size_bytes, is_sqlite),
                        _ints(func.coalesce(length, -1), is_sqlite), _keys(v.inline_data, is_sqlite)),
    }

