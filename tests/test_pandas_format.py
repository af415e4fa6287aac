"""pandas values stored without pickle, so untrusted stores can load them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from memostore import Storage, content_id, op
from memostore.serialization import FORMAT_PANDAS, FORMAT_PICKLE, dumps, loads

frames = hpd.data_frames(
    columns=[
        hpd.column("ints", dtype=np.int64),
        hpd.column("floats", dtype=np.float64),
        hpd.column("flags", dtype=bool),
        hpd.column("text", elements=st.none() | st.text(max_size=5), dtype=object),
    ],
    index=hpd.range_indexes(max_size=8) | hpd.indexes(dtype=np.int64, max_size=8),
)


@settings(max_examples=60)
@given(frames)
def test_frames_round_trip_without_pickle(frame):
    fmt, data = dumps(frame)
    assert fmt == FORMAT_PANDAS
    back = loads(fmt, data, allow_pickle=False)
    pd.testing.assert_frame_equal(back, frame)
    assert content_id(back) == content_id(frame)


@given(hpd.series(dtype=np.float64, name=st.sampled_from([None, "x"])))
def test_series_round_trip_without_pickle(series):
    fmt, data = dumps(series)
    assert fmt == FORMAT_PANDAS
    pd.testing.assert_series_equal(loads(fmt, data, allow_pickle=False), series)


def test_string_dtype_dates_and_labelled_indexes():
    frame = pd.DataFrame({"when": pd.to_datetime(["2020-01-01", "2021-06-30"]),
                          "name": pd.array(["a", None], dtype="str")},
                         index=pd.Index(["r1", "r2"], name="row"))
    fmt, data = dumps(frame)
    assert fmt == FORMAT_PANDAS
    back = loads(fmt, data, allow_pickle=False)
    pd.testing.assert_frame_equal(back, frame)
    assert content_id(back) == content_id(frame)


@pytest.mark.parametrize("value", [
    pd.DataFrame({"c": pd.Categorical(["a", "b"])}),
    pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}),
    pd.DataFrame({"x": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")])),
    pd.DataFrame({"mixed": [1, "a"]}),
])
def test_other_pandas_values_fall_back_to_pickle(value):
    fmt, data = dumps(value)
    assert fmt == FORMAT_PICKLE
    assert content_id(loads(fmt, data)) == content_id(value)


def test_an_untrusted_storage_loads_frames(db_path):
    @op
    def table(n):
        return pd.DataFrame({"i": range(n), "name": [f"n{i}" for i in range(n)]})

    with Storage(db_path=db_path):
        table(3)
    cautious = Storage(db_path=db_path, allow_pickle=False)
    with cautious:
        loaded = cautious.unwrap(table(3))
    assert loaded["name"].tolist() == ["n0", "n1", "n2"]
