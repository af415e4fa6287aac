"""Plain values as bytes, read back by a bounded decoder of our own.

Plain values (None, bool, int, float, complex, str, bytes, and lists,
tuples, dicts, sets and frozensets of them) are written with
``marshal.dumps(value, 2)``: a tagged format, one type byte per item
(``N T F i l g y u s ( [ { < >``), four-byte little-endian counts, and no
back-references, so the decoded value is never larger than its bytes.

They are read by ``decode``, never by ``marshal.loads``: stores opened with
``allow_pickle=False`` may come from anyone, and ``marshal.loads`` trusts its
input (five bytes can ask it for a 16 GiB tuple). ``decode`` also reads what
earlier releases wrote (marshal version 4: short strings, and
back-references to earlier items, whose expansion it bounds). Every count is
checked against the bytes left before anything is allocated, nesting is
limited, and any malformed input raises ``CorruptValueError``.
"""

from __future__ import annotations

import marshal
import struct
from typing import Any, Callable

from memostore.errors import CorruptValueError

MARSHAL_VERSION = 2  # no back-references: a value is never larger than its bytes
MAX_DEPTH = 100  # deeper than anything ``dumps`` writes (it stops at 64)
EXPANSION_PER_BYTE = 64  # items a back-reference may add, per byte of input
MIN_EXPANSION_ITEMS = 1_000_000
FAST_MIN_ITEMS = 64  # lists of numbers at least this long are read with numpy

_FLAG_REF = 0x80
_INT32 = struct.Struct("<i")
_DOUBLE = struct.Struct("<d")
_PENDING = object()  # a reserved back-reference whose container is still being read


def dumps(value: Any) -> bytes:
    """The bytes of a plain value (see ``serialization`` for what is plain).

    >>> decode(dumps({"a": (1, 2.5, None)}))
    {'a': (1, 2.5, None)}
    """
    return marshal.dumps(value, MARSHAL_VERSION)


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The plain value in ``data``; raises CorruptValueError if it is not well formed.

    >>> decode(b"(\\xff\\xff\\xff\\x7f")
    Traceback (most recent call last):
    ...
    memostore.errors.CorruptValueError: damaged plain value: a tuple of 2147483647 items in 0 bytes
    """
    data = bytes(data)
    fixed = _FIXED.get(data[0]) if data else None
    if fixed is not None and len(data) == 1 + fixed[0]:  # a lone number, None or bool: most values
        return fixed[1](data, 1)
    reader = _Reader(data)
    value = reader.read(0)
    if reader.position != len(reader.data):
        raise CorruptValueError(f"damaged plain value: {len(reader.data) - reader.position} bytes after the end")
    return value


class _Reader:
    __slots__ = ("data", "position", "refs", "weights", "produced", "limit")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.refs: list[Any] = []
        self.weights: list[int] = []  # items in each back-referenceable value, nested ones included
        self.produced = 0  # items decoded so far, back-references counted in full
        self.limit = max(MIN_EXPANSION_ITEMS, EXPANSION_PER_BYTE * len(data))

    def take(self, size: int) -> bytes:
        start = self.position
        if size < 0 or start + size > len(self.data):
            raise CorruptValueError(f"damaged plain value: {size} bytes wanted at byte {start}, "
                                    f"{len(self.data) - start} left")
        self.position = start + size
        return self.data[start:start + size]

    def int32(self) -> int:
        value: int = _INT32.unpack(self.take(4))[0]
        return value

    def count(self, what: str, per_item: int = 1) -> int:
        """A count of items, each at least ``per_item`` bytes, that the bytes left can hold."""
        size = self.int32()
        left = len(self.data) - self.position
        if size < 0 or size * per_item > left:
            raise CorruptValueError(f"damaged plain value: a {what} of {size} items in {left} bytes")
        return size

    def read(self, depth: int) -> Any:
        data, position = self.data, self.position
        if position >= len(data):
            raise CorruptValueError(f"damaged plain value: it ends early, at byte {position}")
        code = data[position]
        fixed = _FIXED.get(code)  # the common leaves, without a back-reference slot: read inline
        if fixed is not None:
            size, decode_fixed = fixed
            if position + 1 + size > len(data):
                raise CorruptValueError(f"damaged plain value: it ends inside the item at byte {position}")
            self.position = position + 1 + size
            self.produced += 1
            return decode_fixed(data, position + 1)
        if depth > MAX_DEPTH:
            raise CorruptValueError(f"damaged plain value: nested deeper than {MAX_DEPTH}")
        self.position = position + 1
        flagged, kind = code & _FLAG_REF, chr(code & ~_FLAG_REF)
        if kind == "r":
            return self.back_reference()
        slot, before = len(self.refs), self.produced
        if flagged:
            self.refs.append(_PENDING)
            self.weights.append(0)
        reader = _READERS.get(kind)
        if reader is None:
            raise CorruptValueError(f"damaged plain value: unknown type byte {code:#04x} at byte {position}")
        value = reader(self, depth)
        self.produced += 1
        if flagged:
            self.refs[slot] = value
            self.weights[slot] = self.produced - before
        return value

    def back_reference(self) -> Any:
        index = self.int32()
        if not 0 <= index < len(self.refs) or self.refs[index] is _PENDING:
            raise CorruptValueError(f"damaged plain value: a back-reference to item {index} of {len(self.refs)}")
        self.produced += self.weights[index]
        if self.produced > self.limit:
            # Hashing (or walking) the value would take time out of all proportion to its bytes.
            raise CorruptValueError("damaged plain value: its back-references expand it beyond "
                                    f"{self.limit} items")
        return self.refs[index]

    def items(self, size: int, depth: int) -> list[Any]:
        if size >= FAST_MIN_ITEMS:
            numbers = self.numbers(size)
            if numbers is not None:
                return numbers
        return [self.read(depth + 1) for _ in range(size)]

    def numbers(self, size: int) -> list[Any] | None:
        """``size`` ints (or floats) in a row, as new writes lay out a list of them, read in one go; else None."""
        start = self.position
        code = self.data[start:start + 1]
        width = {b"i": 4, b"g": 8}.get(code)
        end = start + size * (1 + width) if width else 0
        if not width or end > len(self.data) or self.data[start:end:1 + width] != code * size:
            return None
        import numpy as np

        layout = np.dtype([("code", "u1"), ("value", "<i4" if code == b"i" else "<f8")])
        values: list[Any] = np.frombuffer(self.data, dtype=layout, count=size, offset=start)["value"].tolist()
        self.position = end
        self.produced += size
        return values


def _long(reader: _Reader, depth: int) -> int:
    size = reader.int32()
    digits = abs(size)
    if digits * 2 > len(reader.data) - reader.position:
        raise CorruptValueError(f"damaged plain value: an int of {digits} digits")
    raw = struct.unpack(f"<{digits}H", reader.take(2 * digits))
    value = 0
    for digit in reversed(raw):
        if digit >= 1 << 15:
            raise CorruptValueError("damaged plain value: an int digit out of range")
        value = (value << 15) | digit
    return -value if size < 0 else value


def _text(reader: _Reader, size: int) -> str:
    try:
        return reader.take(size).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as err:
        raise CorruptValueError(f"damaged plain value: a string that is not UTF-8 ({err.reason})") from None


def _dict(reader: _Reader, depth: int) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    while reader.data[reader.position:reader.position + 1] != b"0":
        key = reader.read(depth + 1)
        try:
            result[key] = reader.read(depth + 1)
        except TypeError:
            raise CorruptValueError(f"damaged plain value: a dict key of type {type(key).__name__}") from None
    reader.take(1)
    return result


def _hashables(build: Callable[[list[Any]], Any]) -> Callable[[_Reader, int], Any]:
    def read(reader: _Reader, depth: int) -> Any:
        try:
            return build(reader.items(reader.count("set"), depth))
        except TypeError:
            raise CorruptValueError("damaged plain value: a set holding an unhashable item") from None
    return read


_FIXED: dict[int, tuple[int, Callable[[bytes, int], Any]]] = {
    ord("N"): (0, lambda data, at: None),
    ord("T"): (0, lambda data, at: True),
    ord("F"): (0, lambda data, at: False),
    ord("i"): (4, lambda data, at: _INT32.unpack_from(data, at)[0]),
    ord("g"): (8, lambda data, at: _DOUBLE.unpack_from(data, at)[0]),
}

_READERS: dict[str, Callable[[_Reader, int], Any]] = {
    "N": lambda reader, depth: None,
    "T": lambda reader, depth: True,
    "F": lambda reader, depth: False,
    "i": lambda reader, depth: reader.int32(),
    "l": _long,
    "g": lambda reader, depth: _DOUBLE.unpack(reader.take(8))[0],
    "y": lambda reader, depth: complex(*struct.unpack("<dd", reader.take(16))),
    "s": lambda reader, depth: reader.take(reader.count("bytes")),
    "u": lambda reader, depth: _text(reader, reader.count("str")),
    "t": lambda reader, depth: _text(reader, reader.count("str")),
    "a": lambda reader, depth: _text(reader, reader.count("str")),
    "A": lambda reader, depth: _text(reader, reader.count("str")),
    "z": lambda reader, depth: _text(reader, reader.take(1)[0]),
    "Z": lambda reader, depth: _text(reader, reader.take(1)[0]),
    "(": lambda reader, depth: tuple(reader.items(reader.count("tuple"), depth)),
    ")": lambda reader, depth: tuple(reader.items(reader.take(1)[0], depth)),
    "[": lambda reader, depth: reader.items(reader.count("list"), depth),
    "{": _dict,
    "<": _hashables(set),
    ">": _hashables(frozenset),
}
