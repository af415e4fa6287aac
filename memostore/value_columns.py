"""A column of stored values for a frame's table, read in one scan and each value checked.

A table over a million calls loads hundreds of thousands of values. Read
row by row, each costs a tuple, a hex id and a dictionary entry before it
is even decoded. When a column wants most of the store, the values table is
read whole instead (``MetadataStore.value_table``) and cut with numpy; the
commonest value, a plain int, is decoded for the whole column at once. Every
value is still checked against its content id: ints by digests compared in
one array, the rest by ``CallBuffer.load_stored_rows``.

A frame's ``df`` starts that read on a second thread (``TableAhead``) as it
begins, so that the database scans the table (which releases the GIL) while
the frame works out its rows: the table is content-addressed and every value
checked, so reading it a moment early cannot give a wrong value.
"""

from __future__ import annotations

import threading
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
_DIGEST_CHUNK = 1 << 16
_SEPARATOR = 0x1F


def load_value_column(buffer: CallBuffer, store: MetadataStore, cids: np.ndarray,
                      ahead: TableAhead | None = None) -> np.ndarray:
    """The values of a column of distinct content ids (``S16``: their 16 bytes), in the same order:
    an ``int64`` array when every one is a plain int, else an object array; raises the first
    value's error (damaged, missing) as ``CallBuffer.load_values`` does. ``ahead`` is the values
    table, being read already."""
    values = np.empty(cids.size, dtype=object)
    served = np.zeros(cids.size, dtype=bool)
    ints = PlainInts(np.zeros(cids.size, dtype=np.int64), np.zeros(cids.size, dtype=bool))
    table = None
    if cids.size >= SCAN_MIN_VALUES:
        buffer.flush()
        table = ahead.result() if ahead is not None else scanned(store.value_table(SCAN_MAX_INLINE_BYTES))
    if table is not None and cids.size >= SCAN_MIN_FRACTION * table.sorted_keys.size:
        served = _serve_from_table(buffer, table, cids, values, ints)
        if ints.served.all():
            return ints.numbers
        values[ints.served] = ints.numbers[ints.served].tolist()
    if not served.all():
        rest = _hexes(cids[~served])
        loaded = buffer.load_values(rest)
        values[~served] = np.fromiter(map(loaded.__getitem__, rest), dtype=object, count=len(rest))
    return values


class ScannedTable(NamedTuple):
    """A ``ValueTable`` cut into numpy columns, its rows' ids sorted by their first 8 bytes."""

    row_ids: np.ndarray  # uint8, one row of 16 per value
    order: np.ndarray  # the rows in key order
    sorted_keys: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    formats: Formats
    data: bytes


def scanned(table: ValueTable | None) -> ScannedTable | None:
    """The columns of a values table read whole (None stays None: the table was too large)."""
    if table is None:
        return None
    row_ids = np.frombuffer(table.cids, dtype=np.uint8).reshape(-1, 16)
    row_keys = _high_words(row_ids)
    order = np.argsort(row_keys)
    lengths = _ints(table.lengths)
    starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))])[:-1]
    formats = Formats(table.formats.encode("utf-8", "surrogatepass"), row_ids.shape[0])
    return ScannedTable(row_ids, order, row_keys[order], lengths, starts, _ints(table.sizes), formats, table.data)


class Formats:
    """The format names of a table's rows, joined by ``\\x1f``, cut without a string per row: a
    column holds a few distinct formats, and a million small strings cost 60 MB."""

    def __init__(self, joined: bytes, rows: int) -> None:
        self.joined = joined
        if not rows:
            self.starts = self.ends = np.empty(0, dtype=np.intp)
            return
        breaks = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == _SEPARATOR)
        self.starts = np.concatenate([[0], breaks + 1])
        self.ends = np.append(breaks, len(joined))

    def name(self, row: int) -> str:
        return self.joined[self.starts[row]:self.ends[row]].decode("utf-8", "surrogatepass")

    def are(self, rows: np.ndarray, name: str) -> np.ndarray:
        """Whether each of these rows has the format ``name``."""
        wanted = name.encode("utf-8", "surrogatepass")
        starts = self.starts[rows]
        same: np.ndarray = self.ends[rows] - starts == len(wanted)
        if wanted and same.any():
            text = np.frombuffer(self.joined, dtype=np.uint8)
            cut = text[starts[same][:, None] + np.arange(len(wanted))]
            same[same] = (cut == np.frombuffer(wanted, dtype=np.uint8)).all(axis=1)
        return same


class TableAhead:
    """The values table, read and cut on a thread of its own (see the module docstring)."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._found: ScannedTable | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="memostore-values-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._found = scanned(self._store.value_table(SCAN_MAX_INLINE_BYTES))
        except BaseException as err:  # raised where the table is used
            self._error = err

    def result(self) -> ScannedTable | None:
        """The table (None if too large to read whole); raises what reading it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found

    def wait(self) -> None:
        """Let the read finish (the store's connection is then free again), whatever it gave."""
        self._thread.join()


class PlainInts(NamedTuple):
    """The plain ints of a column, checked: ``numbers[i]`` is the value where ``served[i]``."""

    numbers: np.ndarray
    served: np.ndarray


def _serve_from_table(buffer: CallBuffer, scan: ScannedTable, cids: np.ndarray, values: np.ndarray,
                      ints: PlainInts) -> np.ndarray:
    """Fill ``values`` (and ``ints``) from the rows of the table that hold these cids and check
    out; which were."""
    wanted = np.ascontiguousarray(cids).view(np.uint8).reshape(-1, 16)
    at, found = _rows_of_ids(scan, wanted)
    lengths, starts, sizes, formats = scan.lengths, scan.starts, scan.sizes, scan.formats
    data = np.frombuffer(scan.data, dtype=np.uint8)
    served = np.zeros(cids.size, dtype=bool)
    wanted_rows = at[found]
    is_int = (lengths[wanted_rows] == _PLAIN_INT_BYTES) & (sizes[wanted_rows] == _PLAIN_INT_BYTES)
    is_int[is_int] = formats.are(wanted_rows[is_int], FORMAT_MARSHAL)
    is_int[is_int] = data[starts[wanted_rows[is_int]]] == _PLAIN_INT
    positions = np.flatnonzero(found)
    served[positions[is_int]] = _serve_ints(data, starts[wanted_rows[is_int]], wanted[positions[is_int]],
                                            ints, positions[is_int])
    others = positions[~is_int]
    rows = [StoredValue(cids[p:p + 1].tobytes().hex(), formats.name(r), None if lengths[r] < 0 else
                        scan.data[starts[r]:starts[r] + lengths[r]], int(sizes[r]))
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
    ok = np.empty(numbers.size, dtype=bool)
    for first in range(0, numbers.size, _DIGEST_CHUNK):  # in chunks: a digest's input is a bytes object
        last = first + _DIGEST_CHUNK
        ok[first:last] = (int_digests(numbers[first:last]) == wanted[first:last]).all(axis=1)
    kept = positions[ok]
    ints.numbers[kept] = numbers[ok]
    ints.served[kept] = True
    return ok


def _rows_of_ids(scan: ScannedTable, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each wanted 16-byte id in the table, whether it is there), matching all 16 bytes."""
    if not scan.sorted_keys.size:
        return np.zeros(len(wanted), dtype=np.intp), np.zeros(len(wanted), dtype=bool)
    at = np.minimum(np.searchsorted(scan.sorted_keys, _high_words(wanted)), scan.sorted_keys.size - 1)
    rows = scan.order[at]
    return rows, (scan.row_ids[rows] == wanted).all(axis=1)


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
