"""Content ids: canonical, type-tagged, stable across processes."""

from __future__ import annotations

import copy
import dataclasses
import enum
import io
import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from memostore import UnhashableValueError, content_id, register_hasher
from memostore.hashing import digest, int_digests

from helpers import run_python

primitives = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
values = st.recursive(
    primitives,
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def golden_values():
    return {
        "none": None,
        "int": 42,
        "big_int": 2**200,
        "float": 0.5,
        "str": "memostore",
        "bytes": b"\x00\x01",
        "list": [1, "a", None],
        "dict": {"a": 1, "b": [2, 3]},
        "set": {1, 2, 3},
        "array": np.arange(6, dtype=np.int64).reshape(2, 3),
        "frame": pd.DataFrame({"x": [1, 2], "y": [0.5, 1.5]}),
    }


# Changing any of these means stored ids no longer match: bump HASH_FORMAT.
PINNED = {
    "none": "3bcf3019bc2fc54f3f1365fd6238a868",
    "int": "aedcbc383fb59da0054e42148c85f7ec",
    "big_int": "0a1893d00a4f41f06aab553bb01c29f6",
    "float": "5f113cd116ce9485795687c8978d85ca",
    "str": "368886ca668eb4988cfd17b5a0c05f68",
    "bytes": "05b50c860b44cc763057642f4649faa2",
    "list": "93c73bb4029f64257687f6929a83f1c1",
    "dict": "55b44ea1d7f4be35ffea83cabd32708e",
    "set": "9988ef32dc6368d565170954e443455c",
    "array": "05c941a761288c1d32edf365ce633b3b",
}


def test_pinned_digests_do_not_change():
    computed = {name: content_id(value) for name, value in golden_values().items() if name in PINNED}
    assert computed == PINNED


def test_golden_digests_are_stable_across_processes(tmp_path):
    here = {name: content_id(value) for name, value in golden_values().items()}
    code = f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from memostore import content_id
        import test_hashing
        print(json.dumps({{k: content_id(v) for k, v in test_hashing.golden_values().items()}}))
    """
    assert json.loads(run_python(code, tmp_path)) == here


@given(values)
def test_equal_values_have_equal_ids(value):
    assert content_id(value) == content_id(copy.deepcopy(value))


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=2, max_size=6))
def test_dict_id_ignores_insertion_order(mapping):
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert content_id(mapping) == content_id(reversed_mapping)


@given(st.sets(st.integers(), min_size=2, max_size=8))
def test_set_id_ignores_order(items):
    assert content_id(items) == content_id(set(sorted(items, reverse=True)))


@given(st.lists(st.integers(), min_size=2, max_size=6, unique=True))
def test_list_order_matters(items):
    assert content_id(items) != content_id(list(reversed(items)))


def test_types_are_tagged():
    ids = [content_id(v) for v in (1, 1.0, True, "1", b"1", [1], (1,), {1}, frozenset({1}), None, 0, "")]
    assert len(set(ids)) == len(ids)
    assert content_id([1, 2]) != content_id((1, 2))


def test_floats_nan_and_signed_zero():
    assert content_id(float("nan")) == content_id(float("-nan"))
    assert content_id(0.0) != content_id(-0.0)


def test_subclasses_of_builtins_keep_their_type():
    class Color(enum.IntEnum):
        RED = 1

    assert content_id(Color.RED) != content_id(1)


def test_numpy_arrays_by_dtype_shape_and_bytes():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert content_id(a) == content_id(a.copy())
    assert content_id(a) != content_id(a.astype(np.float32))
    assert content_id(a) != content_id(a.reshape(4, 3))
    assert content_id(a[:, ::2]) == content_id(np.ascontiguousarray(a[:, ::2]))
    assert content_id(np.asfortranarray(a)) == content_id(a)
    assert content_id(a.T) != content_id(a)


def test_numpy_scalars_differ_from_python_numbers():
    assert content_id(np.float64(1.5)) != content_id(1.5)
    assert content_id(np.float64(1.5)) == content_id(np.float64(1.5))
    assert content_id(np.int32(3)) != content_id(np.int64(3))


def test_object_arrays_hash_their_items():
    left = np.array(["a", None, 3], dtype=object)
    right = np.array(["a", None, 3], dtype=object)
    assert content_id(left) == content_id(right)
    assert content_id(left) != content_id(np.array(["a", None, 4], dtype=object))


def test_pandas_objects():
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert content_id(frame) == content_id(frame.copy())
    assert content_id(frame) != content_id(frame.rename(columns={"x": "z"}))
    assert content_id(frame) != content_id(frame.set_axis([5, 6]))
    assert content_id(frame) != content_id(frame.astype({"x": "float64"}))
    series = pd.Series([1, 2], name="s")
    assert content_id(series) != content_id(series.rename("t"))
    assert content_id(pd.Index([1, 2])) != content_id(pd.Index([2, 1]))


def test_dataclasses_by_class_and_fields():
    @dataclasses.dataclass
    class Params:
        depth: int
        name: str

    @dataclasses.dataclass
    class Other:
        depth: int
        name: str

    assert content_id(Params(1, "a")) == content_id(Params(1, "a"))
    assert content_id(Params(1, "a")) != content_id(Params(2, "a"))
    assert content_id(Params(1, "a")) != content_id(Other(1, "a"))


def test_register_hasher_uses_the_key():
    class Model:
        def __init__(self, weights, cache):
            self.weights, self.cache = weights, cache

    register_hasher(Model, lambda m: m.weights)
    assert content_id(Model([1, 2], cache=object())) == content_id(Model([1, 2], cache=object()))
    assert content_id(Model([1, 2], None)) != content_id([1, 2])


def test_unknown_types_fall_back_to_cloudpickle():
    class Plain:
        def __init__(self, x):
            self.x = x

    assert content_id(Plain(1)) == content_id(Plain(1))
    assert content_id(Plain(1)) != content_id(Plain(2))


@pytest.mark.parametrize("make", [
    lambda: (i for i in range(3)),
    lambda: io.StringIO("text"),
    threading.Lock,
])
def test_values_without_content_are_rejected(make):
    with pytest.raises(UnhashableValueError) as info:
        content_id(make())
    assert "cannot hash" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_self_containing_values_are_rejected():
    loop: list = []
    loop.append(loop)
    with pytest.raises(UnhashableValueError, match="contains itself"):
        content_id(loop)


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=20))
def test_array_id_matches_across_memory_layouts(items):
    array = np.array(items * 2, dtype=np.int16).reshape(2, -1)
    assert content_id(array[:, ::-1]) == content_id(array[:, ::-1].copy())


@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=50))
@example([0, -1, 1, 127, 128, -128, -129, 255, 256, 32767, -32768, 2**31 - 1, -(2**31)])
def test_int_digests_of_an_array_are_the_digests_of_its_ints(numbers):
    """Frames check stored ints by these array digests: they must be the ids ``content_id`` gives."""
    found = int_digests(np.array(numbers, dtype=np.int32))
    assert [bytes(row) for row in found] == [digest(n) for n in numbers]
