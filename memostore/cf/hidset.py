"""``HidSet``: an immutable set of hids held as numpy arrays.

A frame's variables and op nodes each hold up to millions of hids. As Python
frozensets of 32-character strings, every expansion step and every table
converted them to integer keys and back. A HidSet keeps the sorted ``uint64``
keys (the first 64 bits of each hid) with the hids beside them as 16 raw
bytes each (``S16``, as the store holds them: half the bytes of hex to move
around, and the keys are a view of them), so set algebra is a sorted merge
and tables join on the keys directly. Hex is made only where a hid is shown
or asked of the store. It behaves as a set of ``str`` for everything else
(``in``, iteration, ``len``, ``==``, ``|``...).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from memostore.errors import KeyCollisionError

HEX_CHARS = 32
RAW = "S16"  # a hid or cid as its 16 bytes (read whole: numpy drops an element's trailing NULs)
_EMPTY_KEYS = np.empty(0, dtype=np.uint64)
_EMPTY_RAW = np.empty(0, dtype=RAW)
_NO_CLASH = np.empty(0, dtype=np.intp)


def keys_of_hex(joined: str) -> np.ndarray:
    """uint64 keys of concatenated 32-character hex ids."""
    if not joined:
        return _EMPTY_KEYS
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8")[::2].astype(np.uint64)


def hex_strings(column: np.ndarray) -> list[str]:
    """Python strings of an ``S32`` column."""
    joined = column.tobytes().decode("ascii")
    return [joined[i:i + HEX_CHARS] for i in range(0, len(joined), HEX_CHARS)]


def hex_list(raw: np.ndarray) -> list[str]:
    """Hex strings of a ``RAW`` column."""
    joined = raw.tobytes().hex()
    return [joined[i:i + HEX_CHARS] for i in range(0, len(joined), HEX_CHARS)]


def raw_of_hex(hexes: np.ndarray) -> np.ndarray:
    """The ``RAW`` column of an ``S32`` column of hex ids (ValueError if one is not hex)."""
    return np.frombuffer(bytes.fromhex(hexes.tobytes().decode("ascii")), dtype=RAW)


# Each byte's two hex digits as one uint16 (in memory order): a column of ids becomes hex by one lookup.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % byte for byte in range(256)), dtype=np.uint16)
_HEX_CHUNK = 1 << 16


def hex_of_raw(raw: np.ndarray) -> np.ndarray:
    """The ``S32`` column of hex ids of a ``RAW`` column."""
    data = np.ascontiguousarray(raw).view(np.uint8)
    pairs = np.empty(data.size, dtype=np.uint16)
    for start in range(0, data.size, _HEX_CHUNK):  # in chunks: numpy copies the indices as intp first
        np.take(_HEX_PAIRS, data[start:start + _HEX_CHUNK], out=pairs[start:start + _HEX_CHUNK])
    column: np.ndarray = pairs.view(f"S{HEX_CHARS}")
    return column


def checked_raw_keys_and_order(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``checked_keys_and_order`` of a ``RAW`` column."""
    if not raw.size:
        return _EMPTY_KEYS, np.empty(0, dtype=np.intp)
    return checked_words_and_order(np.ascontiguousarray(raw).view(">u8"))


def checked_keys_and_order(hexes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of an ``S32`` column and the order that sorts them, after checking
    that no two different ids share a key."""
    if not hexes.size:
        return _EMPTY_KEYS, np.empty(0, dtype=np.intp)
    return checked_words_and_order(np.frombuffer(bytes.fromhex(hexes.tobytes().decode()), dtype=">u8"))


def checked_words_and_order(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``checked_keys_and_order`` of 16-byte ids given as big-endian 64-bit words (high, low, high...)."""
    high = words[::2].astype(np.uint64)
    order = np.argsort(high)
    sorted_high, sorted_low = high[order], words[1::2][order]
    same_key = sorted_high[1:] == sorted_high[:-1]
    clashes = np.flatnonzero(same_key & (sorted_low[1:] != sorted_low[:-1])) if same_key.any() else _NO_CLASH
    if clashes.size:
        first = clashes[0]
        ids = [f"{int(sorted_high[i]):016x}{int(sorted_low[i]):016x}" for i in (first, first + 1)]
        raise KeyCollisionError(f"two stored ids, {ids[0]} and {ids[1]}, share their first 64 bits, by which a "
                                "frame keys them, so this frame cannot tell them apart and refuses rather than "
                                "merge them; the store's other reads (unwrap, load_ref, lookups) are unaffected")
    return high, order


def checked_keys(hexes: np.ndarray) -> np.ndarray:
    """Keys of an ``S32`` column, after checking that no two different ids share one."""
    return checked_keys_and_order(hexes)[0]


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


SORT_NEEDLES_FROM = 4_096


def unique_keys(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` by sorting: numpy 2.3+ finds the unique values of an array with a hash
    table, which on a million random 64-bit keys is 50 times slower than a sort."""
    ordered = np.sort(values, axis=None)
    if ordered.size < 2:
        return ordered
    unique: np.ndarray = ordered[_firsts(ordered)]
    return unique


def _firsts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array starts, as a mask."""
    first = np.empty(ordered.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return first


def is_sorted(values: np.ndarray) -> bool:
    """Whether an array is in ascending order (one pass: cheaper than sorting it again)."""
    return values.size < 2 or bool((values[1:] >= values[:-1]).all())


def unique_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique keys, the position of one occurrence of each): ``np.unique(keys,
    return_index=True)`` without its stable sort, and without a sort for keys in order already."""
    order = np.arange(keys.size) if is_sorted(keys) else np.argsort(keys)
    ordered = keys[order]
    first = _firsts(ordered)
    return ordered[first], order[first]


def unique_inverse(keys: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(position of one occurrence of each distinct key, in key order; the index of each key's
    distinct key): ``np.unique(keys, return_index=True, return_inverse=True)`` without its stable
    sort. ``order`` sorts ``keys`` when known already."""
    order = (np.arange(keys.size) if is_sorted(keys) else np.argsort(keys)) if order is None else order
    first = _firsts(keys[order])
    inverse = np.empty(keys.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return order[first], inverse


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``, by numpy's unstable sort (several times faster on 64-bit
    keys) when no two keys are equal, for then both give the same order."""
    order = np.argsort(keys)
    ordered = keys[order]
    if ordered.size > 1 and (ordered[1:] == ordered[:-1]).any():
        return np.argsort(keys, kind="stable")
    return order


def code_order(codes: np.ndarray) -> np.ndarray:
    """``np.argsort(codes, kind="stable")`` for small non-negative integer codes (edge names and
    directions): numpy sorts 16-bit integers by radix, in one pass."""
    if codes.size and 0 <= int(codes.min()) and int(codes.max()) < 2**15:
        codes = codes.astype(np.int16)
    return np.argsort(codes, kind="stable")


def is_in(values: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``np.isin(values, others)`` for key arrays (which numpy would run through its slow unique)."""
    return member(values, unique_keys(others))


def search(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(sorted_keys, values)``, sorting many values first.

    Binary searches for values in random order miss the CPU cache at every
    step; in sorted order each starts where the last ended. For a million
    values in two million keys that is 0.03 s instead of 0.4 s, sort included.
    """
    if values.size < SORT_NEEDLES_FROM or is_sorted(values):
        return np.searchsorted(sorted_keys, values)
    order = np.argsort(values)
    at = np.empty(values.size, dtype=np.intp)
    at[order] = np.searchsorted(sorted_keys, values[order])
    return at


def member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in the sorted array ``sorted_keys`` (repeats allowed)."""
    if not sorted_keys.size or not values.size:
        return np.zeros(values.shape, dtype=bool)
    at = search(sorted_keys, values)
    at[at == sorted_keys.size] = 0
    return sorted_keys[at] == values  # type: ignore[no-any-return]


# Distinct positions are sorted (and sets made) by a mask over all of them from 1/MASK_FROM_FRACTION of them.
MASK_FROM_FRACTION = 16


class Runs(NamedTuple):
    """A sorted array's distinct values (``keys``) and where the run of each starts (``starts``,
    one more: the array's length last): finding a value's run searches the distinct values only,
    and a run's length needs no second search."""

    keys: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, sorted_values: np.ndarray) -> Runs:
        if not sorted_values.size:
            return cls(sorted_values, np.zeros(1, dtype=np.intp))
        starts = np.flatnonzero(_firsts(sorted_values))
        return cls(sorted_values[starts], np.append(starts, sorted_values.size))

    def run_of_each(self) -> np.ndarray:
        """For each position of the sorted array, the run holding it."""
        return np.repeat(np.arange(self.keys.size), np.diff(self.starts))

    def find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(run of each value, whether it has one); the run is 0 where it has none."""
        if not self.keys.size:
            return np.zeros(values.size, dtype=np.intp), np.zeros(values.size, dtype=bool)
        run = search(self.keys, values)
        run[run == self.keys.size] = 0
        found = self.keys[run] == values
        run[~found] = 0
        return run, found

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Positions in the sorted array holding any of ``keys`` (sorted unique), in order."""
        if not self.keys.size:
            return np.empty(0, dtype=np.intp)
        run, found = self.find(keys)
        first = self.starts[run]
        counts = np.where(found, self.starts[run + 1] - first, 0)
        return runs_at(first, counts)


def in_order(rows: np.ndarray, count: int) -> np.ndarray:
    """Distinct positions among ``count``, sorted: by a mask over them when there are many."""
    if rows.size * MASK_FROM_FRACTION < count:
        return np.sort(rows)
    chosen = np.zeros(count, dtype=bool)
    chosen[rows] = True
    return np.flatnonzero(chosen)


def runs_at(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions ``first[i]`` to ``first[i] + counts[i]`` (exclusive), for each ``i`` in turn."""
    ends = np.cumsum(counts)
    return np.repeat(first - (ends - counts), counts) + np.arange(int(ends[-1]) if ends.size else 0)


def runs_of(sorted_values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions in ``sorted_values`` holding any of ``keys`` (sorted unique), in order."""
    first = np.searchsorted(sorted_values, keys, side="left")
    return runs_at(first, np.searchsorted(sorted_values, keys, side="right") - first)


class HidSet:
    """Sorted unique ``keys`` (uint64) and their ids (``raw``, ``RAW``), as a set of hid strings."""

    __slots__ = ("keys", "raw")
    keys: np.ndarray
    raw: np.ndarray

    def __init__(self, keys: np.ndarray = _EMPTY_KEYS, raw: np.ndarray = _EMPTY_RAW) -> None:
        """Trusts its arguments: use ``of`` or ``from_arrays`` unless they are already sorted and unique."""
        self.keys = keys
        self.raw = raw

    @classmethod
    def of(cls, hids: Iterable[str]) -> HidSet:
        """The set of these hid strings (a HidSet is returned as it is)."""
        if isinstance(hids, HidSet):
            return hids
        listed = list(hids)
        if not listed:
            return cls()
        bad = [h for h in listed if not isinstance(h, str) or len(h) != HEX_CHARS]
        try:
            if bad:
                raise ValueError
            return cls.from_arrays(raw_of_hex(np.array(listed, dtype=f"S{HEX_CHARS}")))
        except (ValueError, UnicodeEncodeError):
            shown = bad[:1] or [h for h in listed if not _is_hex(h)][:1]
            raise ValueError(f"not a hid (32 hex digits): {shown[0]!r}") from None

    @classmethod
    def from_arrays(cls, raw: np.ndarray, keys: np.ndarray | None = None) -> HidSet:
        """The set of a ``RAW`` column (with its keys if known), repeats allowed."""
        if not raw.size:
            return cls()
        keys = checked_raw_keys_and_order(raw)[0] if keys is None else keys
        keys, first = unique_order(keys)  # one raw id per key: any occurrence will do
        return cls(keys, raw[first])

    @property
    def hexes(self) -> np.ndarray:
        """The hids as an ``S32`` column of hex, in key order."""
        return hex_of_raw(self.raw)

    # --- set algebra on keys ---------------------------------------------------------

    def __or__(self, other: HidSet) -> HidSet:
        other = HidSet.of(other)
        if not other.keys.size:
            return self
        if not self.keys.size:
            return other
        raw = np.concatenate([self.raw, other.raw])
        return HidSet.from_arrays(raw, np.concatenate([self.keys, other.keys]))

    def __and__(self, other: HidSet) -> HidSet:
        return self.where(member(self.keys, HidSet.of(other).keys))

    def __sub__(self, other: HidSet) -> HidSet:
        return self.where(~member(self.keys, HidSet.of(other).keys))

    def where(self, mask: np.ndarray) -> HidSet:
        """The hids at the True positions of a mask aligned with ``keys``."""
        if mask.all():
            return self
        return HidSet(self.keys[mask], self.raw[mask])

    def restricted_to(self, keys: np.ndarray) -> HidSet:
        """The hids whose key is among these (any order, repeats allowed)."""
        return self.where(is_in(self.keys, keys))

    def issubset(self, other: HidSet) -> bool:
        return bool(member(self.keys, HidSet.of(other).keys).all())

    __le__ = issubset

    def raw_of(self, keys: np.ndarray) -> np.ndarray:
        """The ``RAW`` ids of keys that are in this set."""
        return self.raw[search(self.keys, keys)]  # type: ignore[no-any-return]

    def hexes_of(self, keys: np.ndarray) -> np.ndarray:
        """The ``S32`` hids of keys that are in this set."""
        return hex_of_raw(self.raw_of(keys))

    # --- a set of strings ---------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.keys.size)

    def __bool__(self) -> bool:
        return bool(self.keys.size)

    def __iter__(self) -> Iterator[str]:
        return iter(hex_list(self.raw))

    def __contains__(self, hid: object) -> bool:
        if not isinstance(hid, str) or len(hid) != HEX_CHARS or not _is_hex(hid):
            return False
        key = keys_of_hex(hid)
        at = int(np.searchsorted(self.keys, key)[0])
        return at < self.keys.size and self.raw[at:at + 1].tobytes() == bytes.fromhex(hid)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HidSet):
            return self.keys.size == other.keys.size and bool((self.raw == other.raw).all())
        if isinstance(other, (set, frozenset)):
            return len(other) == len(self) and all(h in self for h in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.raw.tobytes())

    def __repr__(self) -> str:
        shown = ", ".join(repr(h) for h in hex_list(self.raw[:3]))
        more = ", ..." if len(self) > 3 else ""
        return f"HidSet({{{shown}{more}}}, {len(self)} hids)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (HidSet, (self.keys, self.raw))
