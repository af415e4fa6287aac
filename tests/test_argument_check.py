"""An argument changed in place is refused: by the op (after it returns) or by the caller (before it runs)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from memostore import ArgumentChangedError, Storage, op

from helpers import committed_calls


@op
def make(n):
    return list(range(n))


@op
def total(xs):
    return int(sum(xs))


@op
def append_inplace(xs):
    xs.append(100)
    return len(xs)


@op
def zero_first(a):
    a[0] = 0
    return int(a.sum())


@op
def n_rows(df):
    return len(df)


@op
def first_x(df):
    return int(df["x"].iloc[0])


@op
def total_of(lists):
    return sum(sum(xs) for xs in lists)


_long_call_started = threading.Event()


@op
def append_after_the_other(xs):
    if len(xs) > 2:  # the long call: it starts, lets the short one finish, then changes its list
        _long_call_started.set()
        time.sleep(0.5)
    else:
        _long_call_started.wait(10)
    xs.append(100)
    return len(xs)


@op
def append_then_fail(xs):
    xs.append(100)
    raise RuntimeError("the op failed after changing its argument")


def test_an_op_changing_its_argument_is_refused_and_nothing_wrong_is_stored(storage: Storage) -> None:
    with storage:
        xs = make(3)
        with pytest.raises(ArgumentChangedError, match=r"op 'append_inplace' changed its argument 'xs' in place"):
            append_inplace(xs)
        assert storage.unwrap(xs) == [0, 1, 2]  # the Ref reloads the stored value, not the changed object
        first = total(xs)
    with storage:
        again = total(make(3))
    assert storage.unwrap(first) == storage.unwrap(again) == 3
    assert storage.cf(append_inplace).df().empty  # the refused call is not stored
    assert storage.check().ok


def test_a_changed_array_given_as_a_plain_value_is_not_stored(storage: Storage) -> None:
    array = np.arange(1, 5)
    with storage:
        with pytest.raises(ArgumentChangedError, match="'zero_first' changed its argument 'a'"):
            zero_first(array)
    assert storage.cf(zero_first).df().empty


def test_an_array_ref_changed_by_the_op_reloads_its_stored_value(storage: Storage) -> None:
    @op
    def ones(n):
        return np.ones(n)

    with storage:
        a = ones(4)
        storage.commit()
        with pytest.raises(ArgumentChangedError):
            zero_first(a)
        assert storage.unwrap(a).tolist() == [1.0] * 4


def test_a_value_changed_by_the_caller_after_unwrap_is_refused(storage: Storage) -> None:
    @op
    def table():
        return pd.DataFrame({"x": [1, 2, 3]})

    with storage:
        frame_ref = table()
    df = storage.unwrap(frame_ref)
    df.loc[0, "x"] = 99
    with storage:
        with pytest.raises(ArgumentChangedError, match=r"op 'n_rows', argument 'df'.*changed in place.*copy"):
            n_rows(frame_ref)
        assert storage.unwrap(frame_ref)["x"].tolist() == [1, 2, 3]  # the Ref reloaded the stored frame
        assert storage.unwrap(n_rows(frame_ref)) == 3
    assert df["x"].tolist() == [99, 2, 3]  # the caller's own object is theirs


def test_a_changed_ref_inside_a_list_argument_is_refused(storage: Storage) -> None:
    with storage:
        xs = make(3)
        storage.unwrap(xs).append(7)
        with pytest.raises(ArgumentChangedError, match="argument 'lists'"):
            total_of([xs, [1]])
        assert storage.unwrap(total_of([xs, [1]])) == 4


def test_an_op_that_raises_after_changing_its_argument_raises_its_own_error(storage: Storage) -> None:
    with storage:
        xs = make(3)
        with pytest.raises(RuntimeError, match="the op failed"):
            append_then_fail(xs)
        assert storage.unwrap(xs) == [0, 1, 2]


def test_unchanged_arguments_still_hit(db_path) -> None:
    with Storage(db_path=db_path) as storage:
        first = total(make(3))
        n_rows(np.zeros(3))
    with Storage(db_path=db_path) as storage:
        assert storage.unwrap(total(make(3))) == storage.unwrap(first)
        n_rows(np.zeros(3))
    assert storage.last_run.computed == 0
    assert committed_calls(db_path) == 3


@pytest.mark.parametrize("executor", [None, "threads"])
def test_map_refuses_an_op_that_changes_its_argument(storage: Storage, executor: str | None) -> None:
    with storage:
        lists = [make(n) for n in (2, 3)]
        with pytest.raises(ArgumentChangedError, match="'append_inplace' changed its argument 'xs'"):
            storage.map(append_inplace, [{"xs": xs} for xs in lists], executor=executor, progress=False)
        assert storage.unwrap(lists) == [[0, 1], [0, 1, 2]]
    assert storage.cf(append_inplace).df().empty


def test_a_map_stopped_by_one_change_reloads_the_arguments_its_running_calls_changed(storage: Storage) -> None:
    _long_call_started.clear()
    with storage:
        lists = [make(n) for n in (2, 3)]
        with pytest.raises(ArgumentChangedError, match="'append_after_the_other' changed its argument 'xs'"):
            storage.map(append_after_the_other, [{"xs": xs} for xs in lists], executor="threads", progress=False)
        time.sleep(1.0)  # long after the long call changed its list, had it gone on running
        assert storage.unwrap(lists) == [[0, 1], [0, 1, 2]]
    assert storage.cf(append_after_the_other).df().empty


def test_map_refuses_a_value_the_caller_changed(storage: Storage) -> None:
    with storage:
        xs = make(3)
        storage.unwrap(xs).append(7)
        with pytest.raises(ArgumentChangedError, match="op 'total', argument 'xs'"):
            storage.map(total, [{"xs": xs}], executor="threads", progress=False)
    assert storage.cf(total).df().empty


def test_a_list_of_numbers_is_the_ops_own_copy(storage: Storage) -> None:
    numbers = [1, 2]
    with storage:
        assert storage.unwrap(append_inplace(numbers)) == 3  # the op changed its copy of the list
        assert storage.unwrap(total(numbers)) == 3
    assert numbers == [1, 2]
    with storage:
        append_inplace([1, 2])
    assert storage.last_run.hits == 1
