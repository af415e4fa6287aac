"""The bounded decoder of plain values reads what marshal writes, and nothing runs wild."""

from __future__ import annotations

import marshal
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import CorruptValueError
from memostore.marshal_format import MIN_EXPANSION_ITEMS, decode, dumps

leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.complex_numbers(allow_nan=False)
          | st.text() | st.binary())
hashable = st.recursive(leaves, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6)
plain = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(hashable, children, max_size=4) | st.sets(hashable, max_size=4)
    | st.frozensets(hashable, max_size=4),
    max_leaves=16,
)


def same(a, b):
    """Equal, with the same types all the way down (True == 1 would hide a wrong type)."""
    return marshal.dumps(a, 2) == marshal.dumps(b, 2) or (type(a) is type(b) and a == b and not isinstance(a, (
        list, tuple, dict, set, frozenset)))


@given(plain)
def test_new_writes_decode_to_the_same_value(value):
    assert same(decode(dumps(value)), value)


@given(plain)
def test_what_earlier_releases_wrote_decodes_to_the_same_value(value):
    shared = [value, value, "interned", "interned"]  # marshal 4 writes back-references for these
    assert same(decode(marshal.dumps(value)), value)
    assert same(decode(marshal.dumps(shared)), shared)


def test_new_writes_hold_no_back_references():
    item = ("x" * 10, 1)
    assert len(dumps([item] * 100)) > 100 * 10


@pytest.mark.parametrize("payload, message", [
    (b"(" + struct.pack("<i", 2**31 - 1), "tuple of 2147483647 items"),
    (b"[" + struct.pack("<i", -1), "list of -1 items"),
    (b"u" + struct.pack("<i", 2**30), "str of 1073741824 items"),
    (b"l" + struct.pack("<i", 2**30), "int of 1073741824 digits"),
    (b"\x00", "unknown type byte"),
    (b"c", "unknown type byte"),  # code objects are never plain values
    (b"N N", "bytes after the end"),
    (b"r" + struct.pack("<i", 0), "back-reference"),
    (b"{" + b"[" + struct.pack("<i", 0) + b"N0", "dict key of type list"),
    ((b")" + bytes([1])) * 200 + b"N", "nested deeper"),
])
def test_malformed_payloads_raise_corrupt_value_error(payload, message):
    with pytest.raises(CorruptValueError, match=message):
        decode(payload)


def test_back_references_cannot_expand_a_value_without_bound():
    value = ("leaf",)
    for _ in range(40):
        value = (value, value)  # 2**40 leaves in a few hundred bytes of marshal 4
    data = marshal.dumps(value)
    assert len(data) < 1000
    with pytest.raises(CorruptValueError, match=f"beyond {MIN_EXPANSION_ITEMS} items"):
        decode(data)


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=64, max_size=300)
       | st.lists(st.floats(), min_size=64, max_size=300)
       | st.lists(st.integers(-(2**40), 2**40) | st.floats(allow_nan=False), min_size=64, max_size=300))
def test_long_lists_of_numbers_decode_exactly(values):
    for value in (values, tuple(values)):
        decoded = decode(dumps(value))
        assert type(decoded) is type(value) and len(decoded) == len(value)
        assert all(type(a) is type(b) and (a == b or a != a) for a, b in zip(decoded, value, strict=True))
