"""Model objects to rows of ``schema.py`` and back: the one place that knows both.

The model speaks 32-character hex ids and Python strings; the tables hold
16-byte binary ids, integer ids of ops, versions and names, and names and
error texts as UTF-8 bytes (so a NUL or a lone surrogate in a ``**kwargs``
key survives PostgreSQL, whose text cannot hold them).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Iterable, Mapping

from memostore.backends.base import StoredValue
from memostore.backends.schema import HASH_BYTES, STATUS_FAILED
from memostore.backends.statements import FAILED_FLAG, MULTI_OUTPUT_FLAG, OUTPUT_ORDER
from memostore.model import Call, Ref

DIRECTION_IN = "in"
DIRECTION_OUT = "out"


def key(hex_id: str) -> bytes | None:
    """The 16-byte key of a hex id, or None for a string that is no id (it matches nothing)."""
    try:
        data = bytes.fromhex(hex_id)
    except (ValueError, TypeError):
        return None
    return data if len(data) == HASH_BYTES else None


def keys(hex_ids: Iterable[str]) -> list[bytes]:
    """The keys of the hex ids that are ids, each once."""
    return [found for found in {key(hex_id) for hex_id in hex_ids} if found is not None]


def text_bytes(text: str) -> bytes:
    """A name or message as stored: UTF-8, lone surrogates kept."""
    return text.encode("utf-8", "surrogatepass")


def text_of(data: bytes | memoryview | None) -> str | None:
    """The string a ``text_bytes`` column holds (None stays None)."""
    if data is None:
        return None
    return bytes(data).decode("utf-8", "surrogatepass")


# The columns of the flush's bulk rows, in the order of the tuples below (see ``Database.insert``).
VALUE_COLUMNS = ("cid", "format", "size_bytes", "inline_data")
REF_COLUMNS = ("hid", "cid")
CALL_COLUMNS = ("hid", "cid", "op_version_id", "status", "multi_output", "started_at", "duration_s",
                "error_type", "error_message", "error_traceback", "run_id")
OK_CALL_COLUMNS = tuple(name for name in CALL_COLUMNS if not name.startswith("error_"))  # calls without error
EDGE_COLUMNS = ("call_id", "output", "name_id", "position", "ref_id")

# Flags as the bulk rows carry them: SQLite's sqlite3 binds ints without looking for an adapter,
# PostgreSQL needs bools for its boolean columns.
FLAGS_SQLITE = (0, 1)
FLAGS_BOOL = (False, True)

# A 16-byte key as a bound parameter of the bulk rows: sqlite3 binds a bytearray directly, where each
# bytes (and None or bool) parameter costs it a failed adapter lookup (an exception, ~0.3 µs).
_bound_key = bytearray.fromhex
COPIED_INLINE_MAX_BYTES = 4096  # inline value bytes up to this size are cheaper to copy than to adapt
# Sorting by hex id sorts by key, and compares strings, faster than bytes (or bytearrays) in tuples.
_HID = attrgetter("hid")
_CID = attrgetter("cid")


def bound_key(hex_id: str) -> bytearray | None:
    """``key`` as a bound parameter (a bytearray, see ``_bound_key``); None for a string that is no id."""
    try:
        data = _bound_key(hex_id)
    except (ValueError, TypeError):
        return None
    return data if len(data) == HASH_BYTES else None


def by_hid(calls: Iterable[Call]) -> list[Call]:
    """Calls in the order of their keys."""
    return sorted(calls, key=_HID)


def value_rows(values: Iterable[StoredValue]) -> list[tuple[Any, ...]]:
    """Rows of ``memostore_values`` (``VALUE_COLUMNS``), sorted by key (a fixed lock order for concurrent writers).
    Small inline bytes are bound as a bytearray copy (see ``_bound_key``), larger ones as they are."""
    return [(_bound_key(value.cid), value.format, value.size_bytes,
             bytearray(data) if data is not None and len(data) <= COPIED_INLINE_MAX_BYTES else data)
            for value in sorted(values, key=_CID) for data in (value.inline_data,)]


def ref_rows(refs: Mapping[str, str]) -> list[tuple[bytearray, bytearray]]:
    """Rows of ``memostore_refs`` (``REF_COLUMNS``) from ref hid -> cid, sorted by key."""
    return [(_bound_key(hid), _bound_key(refs[hid])) for hid in sorted(refs)]


def call_rows(calls: Iterable[Call], version_ids: Mapping[tuple[str, str], int], run_id: int | None = None,
              flags: tuple[Any, Any] = FLAGS_BOOL, errors: bool = True) -> list[tuple[Any, ...]]:
    """Rows of ``memostore_calls`` (``CALL_COLUMNS``; ``OK_CALL_COLUMNS`` without ``errors``, for calls
    that have none), given the ids of their (op, version)s and run, sorted by key."""
    ordered = sorted(calls, key=_HID)
    if not errors:
        return [(_bound_key(call.hid), _bound_key(call.cid), version_ids[(call.op, call.version)], call.status,
                 flags[1] if call.multi_output else flags[0], call.started_at, call.duration_s, run_id)
                for call in ordered]
    rows = []
    for call in ordered:
        error = call.error
        rows.append((
            _bound_key(call.hid), _bound_key(call.cid), version_ids[(call.op, call.version)], call.status,
            flags[1] if call.multi_output else flags[0], call.started_at, call.duration_s,
            None if error is None else text_bytes(error.type),
            None if error is None else text_bytes(error.message),
            None if error is None else text_bytes(error.traceback),
            run_id,
        ))
    return rows


def edge_rows(calls: Iterable[Call], name_ids: Mapping[str, int], call_ids: Mapping[str, int],
              ref_ids: Mapping[str, int], flags: tuple[Any, Any] = FLAGS_BOOL) -> list[tuple[Any, ...]]:
    """Rows of ``memostore_edges`` (``EDGE_COLUMNS``), given the ids of their names, calls and refs
    (by hex hid), sorted by key. A call or ref without an id gets NULL, which the table refuses."""
    rows = []
    ref_id = ref_ids.get
    no, yes = flags
    for call in sorted(calls, key=_HID):  # new calls' ids follow their hids: rows come out almost sorted
        call_id = call_ids.get(call.hid)
        for output, refs in ((no, call.inputs), (yes, call.outputs)):
            for position, (name, ref) in enumerate(refs.items()):
                rows.append((call_id, output, name_ids[name], position, ref_id(ref.hid)))
    try:
        rows.sort()  # by call id, output?, name id: unique, so later columns are never compared
    except TypeError:  # a call without an id (None): its row fails the insert anyway
        rows.sort(key=_edge_key)
    return rows


def edge_ref_hids(calls: Iterable[Call]) -> set[str]:
    """The hids of the refs the edges of these calls point at."""
    return {ref.hid for call in calls for refs in (call.inputs, call.outputs) for ref in refs.values()}


def _edge_key(row: tuple[Any, ...]) -> Any:
    return row[0] or 0, row[1], row[2]


def op_names(calls: Iterable[Call], op_versions: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ops a batch names."""
    return {call.op for call in calls} | {row["op"] for row in op_versions}


def version_pairs(calls: Iterable[Call], op_versions: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (op, version)s a batch names."""
    return {(call.op, call.version) for call in calls} | {(row["op"], row["version"]) for row in op_versions}


def edge_names(calls: Iterable[Call]) -> set[str]:
    """The argument and output names a batch names."""
    return {name for call in calls for refs in (call.inputs, call.outputs) for name in refs}


def call_record(row: tuple[Any, ...], versions: Callable[[int], tuple[str, str]]) -> tuple[Any, ...]:
    """A ``model.CALL_ROW_FIELDS`` row from (hid, cid, op version id, status, multi, started, duration, errors)."""
    hid, cid, version_id, status, multi, started, duration, error_type, message, traceback = row
    op, version = versions(version_id)
    return (hid.hex(), cid.hex(), op, version, STATUS_FAILED if status == STATUS_FAILED else status,
            bool(multi), started, duration, text_of(error_type), text_of(message), text_of(traceback))


def calls_of_rows(call_rows: Iterable[tuple[Any, ...]], edge_rows: Iterable[tuple[Any, ...]],
                  versions: Callable[[int], tuple[str, str]], names: Callable[[int], str]) -> list[Call]:
    """Calls, with lazy Refs, from call rows (id, then ``call_record``'s columns) and the rows of
    their edges, (call id, output?, name id, ref hid, ref cid) in position order: ``call_record``
    then ``base.calls_from_records`` in one pass, for readers that build every Call at once."""
    sides: dict[int, tuple[dict[str, Ref], dict[str, Ref]]] = {row[0]: ({}, {}) for row in call_rows}
    for call_id, output, name_id, ref_hid, ref_cid in edge_rows:
        sides[call_id][1 if output else 0][names(name_id)] = Ref(ref_cid.hex(), ref_hid.hex())
    calls = []
    for row in call_rows:
        call_id, hid, cid, version_id, status, multi, started, duration, error_type = row[:9]
        if error_type is None and status != STATUS_FAILED:
            calls.append(Call(*versions(version_id), hid.hex(), cid.hex(), *sides[call_id], "ok", bool(multi),
                              started, duration))
        else:
            calls.append(Call.from_row(call_record(row[1:], versions), *sides[call_id]))
    return calls


_HEX = 2 * HASH_BYTES  # a hid or cid in hex: its half of a hex (hid, cid) pair


def joined_calls(found: list[tuple[Any, ...]], versions: Callable[[int], tuple[str, str]],
                 names: Callable[[int], str], errors: bool = False) -> list[Call] | None:
    """The Calls of the rows of ``statements.calls_of_ref_statement`` (``errors``: of its version
    with the error texts), put in order here and read in one pass; None when a failed call is
    among rows without the error texts (ask again with them)."""
    if len(found) > 1:
        found.sort()  # by call, then inputs before outputs, by position (a call's rows differ there)
    calls: list[Call] = []
    call: Any = None
    inputs: dict[str, Ref] = {}
    outputs: dict[str, Ref] = {}
    for row in found:  # every row has an edge: the statement's joins are inner ones
        if row[0] != call:
            call, inputs, outputs = row[0], {}, {}
            if row[3] & FAILED_FLAG:
                if not errors:
                    return None
                record = (call[:HASH_BYTES], call[HASH_BYTES:], row[2], STATUS_FAILED,
                          row[3] & MULTI_OUTPUT_FLAG, row[4], row[5], *row[8:11])
                calls.append(Call.from_row(call_record(record, versions), inputs, outputs))
            else:
                ids = call.hex()
                calls.append(Call(*versions(row[2]), ids[:_HEX], ids[_HEX:], inputs, outputs, "ok",
                                  row[3] == MULTI_OUTPUT_FLAG, row[4], row[5]))
        ids = row[7].hex()
        (outputs if row[1] >= OUTPUT_ORDER else inputs)[names(row[6])] = Ref(ids[_HEX:], ids[:_HEX])
    return calls
