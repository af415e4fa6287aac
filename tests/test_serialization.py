"""Values to bytes and back: numpy and plain data without pickle."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from memostore import SerializationError, UntrustedValueError, content_id, register_serializer
from memostore.serialization import FORMAT_MARSHAL, FORMAT_NUMPY, FORMAT_PICKLE, dumps, loads

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.tuples(children)
    | st.dictionaries(st.text(max_size=4), children, max_size=4) | st.frozensets(st.integers(), max_size=3),
    max_leaves=10,
)


@given(plain)
def test_plain_data_round_trips_without_pickle(value):
    fmt, data = dumps(value)
    assert fmt == FORMAT_MARSHAL
    back = loads(fmt, data, allow_pickle=False)
    assert back == value
    assert content_id(back) == content_id(value)


@given(hnp.arrays(dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(max_dims=3, max_side=4)))
def test_numpy_arrays_round_trip_without_pickle(array):
    fmt, data = dumps(array)
    assert fmt == FORMAT_NUMPY
    back = loads(fmt, data, allow_pickle=False)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert content_id(back) == content_id(array)


def test_numpy_scalars_keep_their_type():
    fmt, data = dumps(np.float32(1.5))
    back = loads(fmt, data, allow_pickle=False)
    assert type(back) is np.float32 and back == np.float32(1.5)


def test_other_objects_use_cloudpickle_and_need_trust():
    frame = pd.DataFrame({"a": pd.Categorical(["x", "y"])})  # categoricals are pickled
    fmt, data = dumps(frame)
    assert fmt == FORMAT_PICKLE
    pd.testing.assert_frame_equal(loads(fmt, data), frame)
    with pytest.raises(UntrustedValueError, match="allow_pickle=True"):
        loads(fmt, data, allow_pickle=False)


def test_object_arrays_are_pickled():
    array = np.array([{"a": 1}, None], dtype=object)
    fmt, data = dumps(array)
    assert fmt == FORMAT_PICKLE
    assert list(loads(fmt, data)) == list(array)


def test_unpicklable_values_raise_a_clear_error():
    with pytest.raises(SerializationError, match="register_serializer"):
        dumps(threading.Lock())


def test_registered_serializer_wins_and_round_trips():
    class Celsius:
        def __init__(self, degrees):
            self.degrees = degrees

    register_serializer(Celsius, "test-celsius", lambda c: str(c.degrees).encode(),
                        lambda b: Celsius(float(b)))
    fmt, data = dumps(Celsius(21.5))
    assert fmt == "user:test-celsius"
    assert loads(fmt, data, allow_pickle=False).degrees == 21.5


def test_unknown_format_names_the_fix():
    with pytest.raises(SerializationError, match="register_serializer"):
        loads("user:never-registered", b"")
