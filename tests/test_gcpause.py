"""Frames pause the cyclic garbage collector while they build, and always give it back."""

import gc

import pytest

from memostore import Storage, op
from memostore.gcpause import paused_gc


@op
def double(x):
    return 2 * x


def test_frame_methods_leave_the_collector_as_they_found_it(tmp_path):
    with Storage(db_path=str(tmp_path / "s.db")) as storage:
        for i in range(5):
            double(i)
    assert gc.isenabled()
    frame = storage.cf(double).expand_all()
    table = frame.df()
    assert len(table) == 5 and gc.isenabled()
    gc.disable()
    try:
        storage.cf(double).df()
        assert not gc.isenabled(), "a collector the user turned off stays off"
    finally:
        gc.enable()


def test_the_collector_comes_back_after_an_error():
    with pytest.raises(RuntimeError):
        with paused_gc():
            assert not gc.isenabled()
            raise RuntimeError("boom")
    assert gc.isenabled()
