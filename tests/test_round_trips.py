"""Values come back exactly as they were stored, or are refused with an error that says why."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memostore import Storage, UntrustedValueError, content_id, op
from memostore.serialization import dumps, loads


@op
def identity(value):
    return value


def marker(value):
    """What kind of missing value (or string) ``value`` is: None, NaN and pd.NA are told apart."""
    if value is None:
        return "None"
    if value is pd.NA:
        return "NA"
    if isinstance(value, float) and value != value:
        return "nan"
    return value


cells = st.one_of(st.text(max_size=3), st.none(), st.just(float("nan")), st.just(pd.NA))


@given(st.lists(cells, max_size=8))
def test_object_columns_keep_none_nan_and_na_without_pickle(items):
    series = pd.Series(items, dtype=object, name="s")
    format_name, data = dumps(series)
    assert format_name == "pandas"
    back = loads(format_name, data, allow_pickle=False)
    assert [marker(v) for v in back] == [marker(v) for v in items]
    assert content_id(back) == content_id(series)


def test_an_object_column_with_nan_comes_back_from_a_store(db_path):
    frame = pd.DataFrame({"s": ["a", float("nan")], "t": ["b", pd.NA]}, dtype=object)
    with Storage(db_path=db_path):
        identity(frame)
    with Storage(db_path=db_path, allow_pickle=False) as fresh:
        back = fresh.unwrap(identity(frame))
    assert [marker(v) for v in back["s"]] == ["a", "nan"]
    assert [marker(v) for v in back["t"]] == ["b", "NA"]


@pytest.mark.parametrize("freq", ["D", "2h", "W-SUN", "MS"])
def test_a_datetime_index_keeps_its_freq(db_path, freq):
    series = pd.Series(range(4), index=pd.date_range("2024-01-07", periods=4, freq=freq))
    with Storage(db_path=db_path):
        identity(series)
    with Storage(db_path=db_path, allow_pickle=False) as fresh:
        back = fresh.unwrap(identity(series))
    assert back.index.freq == series.index.freq
    pd.testing.assert_series_equal(back, series)


def matrix(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(data)


SUBCLASSES = {
    "matrix": lambda: matrix([[1.0, 2.0], [3.0, 4.0]]),
    "masked": lambda: np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-9.0),
    "recarray": lambda: np.rec.fromrecords([(1, 2.5), (2, 3.5)], names="a,b"),
}


@pytest.mark.parametrize("name", sorted(SUBCLASSES))
def test_ndarray_subclasses_come_back_as_themselves(db_path, name):
    value = SUBCLASSES[name]()
    with Storage(db_path=db_path):
        identity(value)
    with Storage(db_path=db_path) as fresh:
        back = fresh.unwrap(identity(value))
    assert type(back) is type(value)
    assert content_id(back) == content_id(value)
    if name == "masked":
        assert back.sum() == 4.0 and back.fill_value == -9.0


@pytest.mark.parametrize("name", sorted(SUBCLASSES))
def test_an_untrusting_storage_refuses_ndarray_subclasses_instead_of_dropping_their_type(db_path, name):
    value = SUBCLASSES[name]()
    with Storage(db_path=db_path):
        identity(value)
    with Storage(db_path=db_path, allow_pickle=False) as fresh:
        ref = identity(value)
        with pytest.raises(UntrustedValueError):
            fresh.unwrap(ref)


masked_arrays = st.lists(st.tuples(st.floats(allow_nan=False, width=32), st.booleans()), min_size=1, max_size=6).map(
    lambda pairs: np.ma.array([v for v, _ in pairs], mask=[m for _, m in pairs]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masked_arrays)
def test_masked_arrays_round_trip_through_a_file_store(value):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        with Storage(db_path=path):
            identity(value)
        with Storage(db_path=path) as fresh:
            back = fresh.unwrap(identity(value))
    assert type(back) is np.ma.MaskedArray
    assert back.mask.tolist() == np.ma.getmaskarray(value).tolist()
    assert back.data.tolist() == value.data.tolist()
