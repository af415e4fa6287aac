"""A frame's table shows stored ints as ints, exactly: with missing rows too, past 2**53 and past int64."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memostore import NewArgDefault, Ref, op, value_columns
from memostore.reports import exact_column

# Where a float64 or an int64 stops holding ints exactly, and either side of it.
EDGES = [2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**63, 2**64, -(2**64)]
INTS = st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(), st.sampled_from(EDGES))
EXAMPLES = itertools.count()


@op(output_names=["number"])
def emit_int(tag, value):
    return value


@op(output_names=["copy"])
def copy_int(number):
    return number


@pytest.fixture(params=["rows", "scan"])
def value_reads(request, monkeypatch):
    """Values read row by row, or by one scan of the values table (its plain-int fast path)."""
    if request.param == "scan":
        monkeypatch.setattr(value_columns, "SCAN_MIN_VALUES", 1)
        monkeypatch.setattr(value_columns, "SCAN_MIN_FRACTION", 0.0)
    return request.param


def is_missing(cell):
    return cell is None or cell is pd.NA


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(INTS, st.booleans()), min_size=1, max_size=6, unique_by=lambda row: row[0]))
def test_stored_ints_come_back_exactly_in_the_table(storage, value_reads, rows):
    tag = f"example {next(EXAMPLES)}"
    with storage:
        for value, followed in rows:
            number = emit_int(tag, value)
            if followed:
                copy_int(number)
    table = storage.cf(emit_int).where("tag", lambda t: t == tag).expand_all().df(include_calls=False)
    copies = table["copy"].tolist() if "copy" in table else [None] * len(table)  # no copy_int call yet
    got = sorted(zip(table["number"].tolist(), copies, strict=True))
    assert [number for number, _ in got] == [value for value, _ in sorted(rows)]
    assert all(type(number) is int for number, _ in got)  # not 3.0, nor rounded: the int stored
    assert [None if is_missing(copy) else copy for _, copy in got] == [v if f else None for v, f in sorted(rows)]
    assert all(is_missing(copy) or type(copy) is int for _, copy in got)
    assert all(table[column].dtype.kind != "f" for column in ("number", "copy") if column in table)


def test_ints_with_missing_rows_are_nullable_ints(storage):
    with storage:
        for i in range(4):
            number = emit_int("nullable", i * 2)
            if i % 2:
                copy_int(number)
    table = storage.cf(emit_int).expand_all().df().sort_values("number", ignore_index=True)
    column = table["copy"]
    assert str(column.dtype) == "Int64" and str(table["number"].dtype) == "int64"
    assert column.iloc[1] == 2 and column.iloc[0] is pd.NA
    assert column.tolist() == [pd.NA, 2, pd.NA, 6] and repr(column).count("<NA>") == 2
    assert column.dropna().tolist() == [2, 6] and table.dropna(subset=["copy"])["number"].tolist() == [2, 6]
    assert table[column == 6]["number"].tolist() == [6]  # a missing row is not selected
    assert table[column > 1]["number"].tolist() == [2, 6]
    assert column.sum() == 8 and column.mean() == 4


def test_ints_past_int64_with_missing_rows_stay_python_ints(storage):
    with storage:
        copy_int(emit_int("big", 2**64 + 1))
        emit_int("big", 2**53 + 1)
    table = storage.cf(emit_int).expand_all().df().sort_values("number", ignore_index=True)
    assert table["copy"].dtype == object and table["copy"].tolist() == [None, 2**64 + 1]
    assert table["number"].tolist() == [2**53 + 1, 2**64 + 1]


@op(output_names=["flag"])
def is_even(number):
    return number % 2 == 0


@op(output_names=["ratio"])
def ratio_or_big(number):
    return number / 4 if number < 4 else 2**53 + number


def table_of(storage, tag):
    frame = storage.cf(emit_int).where("tag", lambda t: t == tag).expand_all()
    return frame.df(include_calls=False).sort_values("number", ignore_index=True)


def test_bools_floats_and_mixed_columns_with_missing_rows(storage):
    with storage:
        for i in range(4):
            number = emit_int("flags", i)
            if i < 2:
                is_even(number)
        for i in range(4):
            number = emit_int("ratios", i)
            if i in (1, 2):
                ratio_or_big(number)
    flags = table_of(storage, "flags")
    assert str(flags["flag"].dtype) == "boolean" and flags["flag"].tolist() == [True, False, pd.NA, pd.NA]
    assert flags[flags["flag"]]["number"].tolist() == [0]  # a missing row is not selected
    ratios = table_of(storage, "ratios")
    assert ratios["ratio"].dtype == np.float64 and ratios["ratio"].tolist()[1:3] == [0.25, 0.5]
    with storage:
        ratio_or_big(emit_int("ratios", 5))  # an int past 2**53 among floats: a float column would round it
    mixed = table_of(storage, "ratios")
    assert mixed["ratio"].dtype == object and mixed["ratio"].tolist()[1:] == [0.25, 0.5, None, 2**53 + 5]


def test_refs_and_lazy_columns_hold_refs(storage):
    with storage:
        copy_int(emit_int("refs", 1))
        emit_int("refs", 2)
    cf = storage.cf(emit_int).expand_all()
    for table in (cf.df(values="refs"), cf.df(lazy_vars=["copy"])):
        cells = table["copy"].tolist()
        assert sorted(isinstance(cell, Ref) for cell in cells) == [False, True] and None in cells


@op
def invert(x, scale=NewArgDefault(1)):
    return scale / x


def test_failures_show_arguments_left_out_as_missing_ints(storage):
    items = [{"x": 0}, {"x": 0, "scale": 2**53 + 1}]
    storage.map(invert, items, on_error="record", progress=False)
    failures = storage.failures(invert)
    assert str(failures["scale"].dtype) == "Int64"
    assert sorted(failures["scale"].tolist(), key=str) == [2**53 + 1, pd.NA]


@pytest.mark.parametrize(("cells", "dtype"), [
    ([3, None, 2**53 + 1], "Int64"), ([np.int64(3), None], "Int64"), ([2**63, None], "object"),
    ([True, None], "boolean"), ([1.5, None], "float64"), ([1, float("nan"), None], "float64"),
    ([1, 2.5, 2**53 + 1], "object"), ([1, "a", None], "object"), ([None, None], "object"), ([1, 2], "int64"),
])
def test_exact_column_types_each_kind_of_column(cells, dtype):
    column = pd.Series(exact_column(np.fromiter(cells, object, len(cells))))
    assert str(column.dtype) == dtype
    assert [None if pd.isna(c) else c for c in column.tolist()] == [None if pd.isna(c) else c for c in cells]
