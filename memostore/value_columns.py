"""A column of stored values for a frame's table, read in one scan and each value checked.

A table over a million calls loads hundreds of thousands of values. Read
row by row, each costs a tuple, a hex id and a dictionary entry before it
is even decoded. When a column wants most of the store, the values table is
read whole instead (``MetadataStore.value_table``) and cut with numpy; the
commonest value, a plain int, is decoded for the whole column at once. Every
value is still checked against its content id: ints by digests compared in
one array, the rest by ``CallBuffer.load_stored_rows``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memostore.backends.base import MetadataStore, StoredValue, ValueTable
from memostore.buffer import CallBuffer
from memostore.hashing import int_digests
from memostore.serialization import FORMAT_MARSHAL

# Read the values table whole for at least this many values, and this fraction of the table.
SCAN_MIN_VALUES = 20_000
SCAN_MIN_FRACTION = 0.25
# ...and only while its inline bytes fit comfortably in memory as one string.
SCAN_MAX_INLINE_BYTES = 256 * 1024 * 1024
_PLAIN_INT = ord("i")  # marshal's type byte of a 32-bit int: five bytes in all
_PLAIN_INT_BYTES = 5


def load_value_column(buffer: CallBuffer, store: MetadataStore, cids: np.ndarray) -> np.ndarray:
    """The values of a column of distinct content ids (``S16``: their 16 bytes), in the same order:
    an ``int64`` array when every one is a plain int, else an object array; raises the first
    value's error (damaged, missing) as ``CallBuffer.load_values`` does."""
    values = np.empty(cids.size, dtype=object)
    served = np.zeros(cids.size, dtype=bool)
    ints = PlainInts(np.zeros(cids.size, dtype=np.int64), np.zeros(cids.size, dtype=bool))
    table = None
    if cids.size >= SCAN_MIN_VALUES:
        buffer.flush()
        table = store.value_table(SCAN_MAX_INLINE_BYTES)
    if table is not None and cids.size >= SCAN_MIN_FRACTION * (len(table.cids) // 16):
        served = _serve_from_table(buffer, table, cids, values, ints)
        if ints.served.all():
            return ints.numbers
        values[ints.served] = ints.numbers[ints.served].tolist()
    if not served.all():
        rest = _hexes(cids[~served])
        loaded = buffer.load_values(rest)
        values[~served] = np.fromiter(map(loaded.__getitem__, rest), dtype=object, count=len(rest))
    return values


class PlainInts(NamedTuple):
    """The plain ints of a column, checked: ``numbers[i]`` is the value where ``served[i]``."""

    numbers: np.ndarray
    served: np.ndarray


def _serve_from_table(buffer: CallBuffer, table: ValueTable, cids: np.ndarray, values: np.ndarray,
                      ints: PlainInts) -> np.ndarray:
    """Fill ``values`` (and ``ints``) from the rows of ``table`` that hold these cids and check
    out; which were."""
    row_ids = np.frombuffer(table.cids, dtype=np.uint8).reshape(-1, 16)
    wanted = np.ascontiguousarray(cids).view(np.uint8).reshape(-1, 16)
    at, found = _rows_of_ids(row_ids, wanted)
    lengths = _ints(table.lengths)
    starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))])[:-1]
    data = np.frombuffer(table.data, dtype=np.uint8)
    formats = np.array(table.formats.split("\x1f"), dtype=object) if table.formats else np.empty(0, dtype=object)
    sizes = _ints(table.sizes)
    served = np.zeros(cids.size, dtype=bool)
    wanted_rows = at[found]
    is_int = (formats[wanted_rows] == FORMAT_MARSHAL) & (lengths[wanted_rows] == _PLAIN_INT_BYTES) \
        & (sizes[wanted_rows] == _PLAIN_INT_BYTES)
    is_int[is_int] = data[starts[wanted_rows[is_int]]] == _PLAIN_INT
    positions = np.flatnonzero(found)
    served[positions[is_int]] = _serve_ints(data, starts[wanted_rows[is_int]], wanted[positions[is_int]],
                                            ints, positions[is_int])
    others = positions[~is_int]
    rows = [StoredValue(cids[p:p + 1].tobytes().hex(), formats[r], None if lengths[r] < 0 else
                        table.data[starts[r]:starts[r] + lengths[r]], int(sizes[r]))
            for p, r in zip(others.tolist(), at[others].tolist(), strict=True)]
    loaded, _problems = buffer.load_stored_rows(rows)  # the problems are raised by the caller's reread
    for position, row in zip(others.tolist(), rows, strict=True):
        if row.cid in loaded:
            values[position] = loaded[row.cid]
            served[position] = True
    return served


def _serve_ints(data: np.ndarray, starts: np.ndarray, wanted: np.ndarray, ints: PlainInts,
                positions: np.ndarray) -> np.ndarray:
    """Decode plain ints (a type byte, then four little-endian bytes) and keep those whose
    content id is the one asked for; returns which were kept."""
    if not starts.size:
        return np.zeros(0, dtype=bool)
    numbers = data[starts[:, None] + np.arange(1, _PLAIN_INT_BYTES)].copy().view("<i4").ravel()
    ok: np.ndarray = (int_digests(numbers) == wanted).all(axis=1)
    kept = positions[ok]
    ints.numbers[kept] = numbers[ok]
    ints.served[kept] = True
    return ok


def _rows_of_ids(row_ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each wanted 16-byte id in ``row_ids``, whether it is there), matching all 16 bytes."""
    if not row_ids.size:
        return np.zeros(len(wanted), dtype=np.intp), np.zeros(len(wanted), dtype=bool)
    row_keys, wanted_keys = _high_words(row_ids), _high_words(wanted)
    order = np.argsort(row_keys)
    sorted_keys = row_keys[order]
    at = np.minimum(np.searchsorted(sorted_keys, wanted_keys), sorted_keys.size - 1)
    rows = order[at]
    return rows, (row_ids[rows] == wanted).all(axis=1)


def _high_words(ids: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(ids).view(">u8")[:, 0].astype(np.uint64)


def _hexes(raw: np.ndarray) -> list[str]:
    """The hex strings of 16-byte ids."""
    joined = raw.tobytes().hex()
    return [joined[i:i + 32] for i in range(0, len(joined), 32)]


def _ints(joined: str) -> np.ndarray:
    """An int64 column of comma-separated decimals."""
    if not joined:
        return np.empty(0, dtype=np.int64)
    return np.fromstring(joined, dtype=np.int64, sep=",")
