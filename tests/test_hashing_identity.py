"""Content ids never merge values that a function can tell apart (hash format 2).

These are the values whose ids changed from format 1, each next to a value it
used to be merged with (or, for sets inside pickles, a copy in another process).
"""

from __future__ import annotations

import collections
import copy
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memostore import Storage, UnhashableValueError, content_id, op
from memostore.hashing import HASH_FORMAT

from helpers import run_python


def test_the_format_was_bumped():
    assert HASH_FORMAT == 3  # format 2: the ids this file checks; format 3: functions of your own code


def categorical(categories, ordered=False):
    return pd.Series(pd.Categorical([categories[0]], categories=categories, ordered=ordered))


def matrix(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is still an ndarray users pass
        return np.matrix(data)


THOUSAND = [f"c{i:04d}" for i in range(1000)]
THOUSAND_CHANGED = THOUSAND[:500] + ["zzzz"] + THOUSAND[501:]
DAILY = pd.date_range("2024-01-01", periods=3, freq="D")


class Tagged(list):
    pass


def tagged(meta):
    value = Tagged([1])
    value.meta = meta
    return value


# Pairs that format 1 gave one id.
MERGED_BEFORE = {
    "bytes/bytearray": (b"ab", bytearray(b"ab")),
    "bytes/memoryview": (b"ab", memoryview(b"ab")),
    "memoryview formats": (memoryview(np.arange(2, dtype=np.int16)),
                           memoryview(np.arange(2, dtype=np.int16).view(np.uint8))),
    "OrderedDict order": (collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1)),
    "OrderedDict/dict": (collections.OrderedDict(a=1), {"a": 1}),
    "defaultdict factory": (collections.defaultdict(list, a=1), collections.defaultdict(int, a=1)),
    "masked/plain": (np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]), np.array([1.0, 2.0, 3.0])),
    "mask": (np.ma.array([1.0, 2.0], mask=[0, 1]), np.ma.array([1.0, 2.0], mask=[1, 0])),
    "fill value": (np.ma.array([1.0], fill_value=0.0), np.ma.array([1.0], fill_value=9.0)),
    "matrix/ndarray": (matrix([[1, 2]]), np.array([[1, 2]])),
    "recarray/ndarray": (np.zeros(2, dtype=[("a", "i4")]).view(np.recarray), np.zeros(2, dtype=[("a", "i4")])),
    "1000 categories": (categorical(THOUSAND), categorical(THOUSAND_CHANGED)),
    "ordered categories": (categorical(["a", "b"], ordered=True), categorical(["a", "b"])),
    "categorical frame": (pd.DataFrame({"c": categorical(THOUSAND)}),
                          pd.DataFrame({"c": categorical(THOUSAND_CHANGED)})),
    "CategoricalIndex": (pd.CategoricalIndex(["c0000"], categories=THOUSAND),
                         pd.CategoricalIndex(["c0000"], categories=THOUSAND_CHANGED)),
    "DatetimeIndex freq": (DAILY, pd.DatetimeIndex(list(DAILY))),
    "index freq in a frame": (pd.DataFrame({"x": [1, 2, 3]}, index=DAILY),
                              pd.DataFrame({"x": [1, 2, 3]}, index=pd.DatetimeIndex(list(DAILY)))),
    "subclass attributes": (tagged(1), tagged(2)),
}


@pytest.mark.parametrize("name", sorted(MERGED_BEFORE))
def test_values_a_function_tells_apart_get_distinct_ids(name):
    first, second = MERGED_BEFORE[name]
    assert content_id(first) != content_id(second)
    fresh = memoryview(bytearray(first)).cast(first.format) if isinstance(first, memoryview) else copy.deepcopy(first)
    assert content_id(first) == content_id(fresh)


def test_masked_array_results_are_not_served_for_plain_arrays(tmp_path):
    @op
    def total(values):
        return float(values.sum())

    with Storage(db_path=tmp_path / "s.db") as storage:
        masked = storage.unwrap(total(np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])))
        plain = storage.unwrap(total(np.array([1.0, 2.0, 3.0])))
    assert (masked, plain) == (4.0, 6.0)


def test_an_ndarray_subclass_with_unhashable_state_is_refused():
    class Annotated(np.ndarray):
        pass

    value = np.arange(3).view(Annotated)
    value.lock = __import__("threading").Lock()
    with pytest.raises(UnhashableValueError):
        content_id(value)


def test_pickled_objects_holding_sets_hash_alike_in_every_process(tmp_path):
    code = """
        import types
        from memostore import content_id
        value = types.SimpleNamespace(tags={f"tag{i}" for i in range(50)}, frozen=frozenset("abcdef"))
        print(content_id(value))
    """
    ids = {run_python(code, tmp_path, env={"PYTHONHASHSEED": seed}).strip() for seed in ("1", "2", "3")}
    assert len(ids) == 1
    here = types.SimpleNamespace(tags={f"tag{i}" for i in range(50)}, frozen=frozenset("abcdef"))
    assert ids == {content_id(here)}


# --- the property: through a real store, a result is only served for the same value ---

RUNS: list[int] = []


def describe(value):
    """Everything a function can observe of the values below, as plain data."""
    kind = type(value).__qualname__
    if isinstance(value, memoryview):
        return kind, value.format, value.shape, value.tobytes()
    if isinstance(value, (bytes, bytearray)):
        return kind, bytes(value)
    if isinstance(value, collections.defaultdict):
        return kind, value.default_factory.__name__, describe(dict(value))
    if isinstance(value, collections.OrderedDict):
        return kind, [(describe(k), describe(v)) for k, v in value.items()]
    if isinstance(value, dict):
        return kind, sorted((repr(describe(k)), describe(v)) for k, v in value.items())
    if isinstance(value, np.ma.MaskedArray):
        return kind, value.data.tolist(), np.ma.getmaskarray(value).tolist(), value.fill_value.item()
    if isinstance(value, np.ndarray):
        return kind, value.dtype.str, value.shape, value.tobytes()
    if isinstance(value, pd.Series):
        return kind, list(value.cat.categories), value.cat.ordered, value.astype(object).tolist()
    if isinstance(value, pd.DatetimeIndex):
        return kind, [str(t) for t in value], value.freqstr
    if isinstance(value, (set, frozenset)):
        return kind, sorted(repr(describe(item)) for item in value)
    if isinstance(value, types.SimpleNamespace):
        return kind, describe(vars(value))
    if isinstance(value, (list, tuple)):
        return kind, [describe(item) for item in value]
    return kind, repr(value)


@op
def observe(value):
    RUNS.append(1)
    return repr(describe(value))


small_bytes = st.binary(max_size=3)
small_text = st.sampled_from(["a", "b", "c"])
tricky = st.one_of(
    small_bytes, small_bytes.map(bytearray),
    st.lists(st.tuples(small_text, st.integers(0, 2)), max_size=3).map(collections.OrderedDict),
    st.lists(st.tuples(small_text, st.integers(0, 2)), max_size=3).map(dict),
    st.tuples(st.sampled_from([list, int, str]), st.dictionaries(small_text, st.integers(0, 2), max_size=2))
    .map(lambda pair: collections.defaultdict(pair[0], pair[1])),
    st.lists(st.integers(0, 3), min_size=1, max_size=3).flatmap(lambda data: st.sampled_from([
        np.array(data, dtype=np.int64), np.array(data, dtype=np.int32), matrix(data),
        np.ma.array(data, mask=[i % 2 for i in range(len(data))]), np.ma.array(data)])),
    st.tuples(st.lists(small_text, min_size=1, max_size=3, unique=True), st.booleans())
    .map(lambda pair: categorical(pair[0], pair[1])),
    st.sampled_from([None, "D", "2D"]).map(
        lambda freq: pd.date_range("2024-01-01", periods=2, freq=freq or "D") if freq
        else pd.DatetimeIndex(["2024-01-01", "2024-01-02"])),
    st.sets(small_text, max_size=3).map(lambda tags: types.SimpleNamespace(tags=tags)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tricky, tricky)
def test_a_stored_result_is_served_only_for_a_value_it_was_computed_for(first, second):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        with Storage(db_path=path) as writer:
            assert writer.unwrap(observe(first)) == repr(describe(first))
        with Storage(db_path=path) as reader:  # a fresh process's view: lookups go to the database
            assert reader.unwrap(observe(second)) == repr(describe(second))
            runs = len(RUNS)
            assert reader.unwrap(observe(copy.deepcopy(first))) == repr(describe(first))
            assert len(RUNS) == runs, "an equal fresh copy must be a hit"
