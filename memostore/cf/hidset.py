"""``HidSet``: an immutable set of hids held as numpy arrays.

A frame's variables and op nodes each hold up to millions of hids. As Python
frozensets of 32-character strings, every expansion step and every table
converted them to integer keys and back. A HidSet keeps the sorted ``uint64``
keys (the first 64 bits of each hid) with the hids beside them, so set algebra
is a sorted merge and tables join on the keys directly. It behaves as a set of
``str`` for everything else (``in``, iteration, ``len``, ``==``, ``|``...).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

HEX_CHARS = 32
_EMPTY_KEYS = np.empty(0, dtype=np.uint64)
_EMPTY_HEXES = np.empty(0, dtype=f"S{HEX_CHARS}")


class KeyCollisionError(RuntimeError):
    """Two different hids share their first 64 bits, so keys cannot tell them apart."""


def keys_of_hex(joined: str) -> np.ndarray:
    """uint64 keys of concatenated 32-character hex ids."""
    if not joined:
        return _EMPTY_KEYS
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8")[::2].astype(np.uint64)


def hex_strings(column: np.ndarray) -> list[str]:
    """Python strings of an ``S32`` column."""
    joined = column.tobytes().decode("ascii")
    return [joined[i:i + HEX_CHARS] for i in range(0, len(joined), HEX_CHARS)]


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
    if same_key.any() and (same_key & (sorted_low[1:] != sorted_low[:-1])).any():
        raise KeyCollisionError("two stored ids share their first 64 bits; this frame cannot tell them apart")
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
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    unique: np.ndarray = ordered[first]
    return unique


def is_in(values: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``np.isin(values, others)`` for key arrays (which numpy would run through its slow unique)."""
    return member(values, unique_keys(others))


def search(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.searchsorted(sorted_keys, values)``, sorting many values first.

    Binary searches for values in random order miss the CPU cache at every
    step; in sorted order each starts where the last ended. For a million
    values in two million keys that is 0.03 s instead of 0.4 s, sort included.
    """
    if values.size < SORT_NEEDLES_FROM:
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


class HidSet:
    """Sorted unique ``keys`` (uint64) and their ``hexes`` (``S32``), as a set of hid strings."""

    __slots__ = ("keys", "hexes")
    keys: np.ndarray
    hexes: np.ndarray

    def __init__(self, keys: np.ndarray = _EMPTY_KEYS, hexes: np.ndarray = _EMPTY_HEXES) -> None:
        """Trusts its arguments: use ``of`` or ``from_arrays`` unless they are already sorted and unique."""
        self.keys = keys
        self.hexes = hexes

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
            return cls.from_arrays(np.array(listed, dtype=f"S{HEX_CHARS}"))
        except (ValueError, UnicodeEncodeError):
            shown = bad[:1] or [h for h in listed if not _is_hex(h)][:1]
            raise ValueError(f"not a hid (32 hex digits): {shown[0]!r}") from None

    @classmethod
    def from_arrays(cls, hexes: np.ndarray, keys: np.ndarray | None = None) -> HidSet:
        """The set of an ``S32`` column (with its keys if known), repeats allowed."""
        if not hexes.size:
            return cls()
        keys = checked_keys(hexes) if keys is None else keys
        keys, first = np.unique(keys, return_index=True)
        return cls(keys, hexes[first])

    # --- set algebra on keys ---------------------------------------------------------

    def __or__(self, other: HidSet) -> HidSet:
        other = HidSet.of(other)
        if not other.keys.size:
            return self
        if not self.keys.size:
            return other
        hexes = np.concatenate([self.hexes, other.hexes])
        return HidSet.from_arrays(hexes, np.concatenate([self.keys, other.keys]))

    def __and__(self, other: HidSet) -> HidSet:
        return self.where(member(self.keys, HidSet.of(other).keys))

    def __sub__(self, other: HidSet) -> HidSet:
        return self.where(~member(self.keys, HidSet.of(other).keys))

    def where(self, mask: np.ndarray) -> HidSet:
        """The hids at the True positions of a mask aligned with ``keys``."""
        if mask.all():
            return self
        return HidSet(self.keys[mask], self.hexes[mask])

    def restricted_to(self, keys: np.ndarray) -> HidSet:
        """The hids whose key is among these (any order, repeats allowed)."""
        return self.where(is_in(self.keys, keys))

    def issubset(self, other: HidSet) -> bool:
        return bool(member(self.keys, HidSet.of(other).keys).all())

    __le__ = issubset

    def hexes_of(self, keys: np.ndarray) -> np.ndarray:
        """The ``S32`` hids of keys that are in this set."""
        return self.hexes[search(self.keys, keys)]  # type: ignore[no-any-return]

    # --- a set of strings ---------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.keys.size)

    def __bool__(self) -> bool:
        return bool(self.keys.size)

    def __iter__(self) -> Iterator[str]:
        return iter(hex_strings(self.hexes))

    def __contains__(self, hid: object) -> bool:
        if not isinstance(hid, str) or len(hid) != HEX_CHARS:
            return False
        key = keys_of_hex(hid)
        at = int(np.searchsorted(self.keys, key)[0])
        return at < self.keys.size and self.hexes[at] == hid.encode()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HidSet):
            return self.keys.size == other.keys.size and bool((self.hexes == other.hexes).all())
        if isinstance(other, (set, frozenset)):
            return len(other) == len(self) and all(h in self for h in other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.hexes.tobytes())

    def __repr__(self) -> str:
        shown = ", ".join(repr(h) for h in hex_strings(self.hexes[:3]))
        more = ", ..." if len(self) > 3 else ""
        return f"HidSet({{{shown}{more}}}, {len(self)} hids)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (HidSet, (self.keys, self.hexes))
