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


def huge_pages_setting():
    """numpy's current huge-page setting (its switch returns the previous one)."""
    from numpy._core.multiarray import _set_madvise_hugepage

    current = _set_madvise_hugepage(True)
    _set_madvise_hugepage(current)
    return current


@pytest.mark.parametrize("before", [True, False])
def test_frames_allocate_in_small_pages_and_give_numpy_its_setting_back(tmp_path, before):
    import threading

    from numpy._core.multiarray import _set_madvise_hugepage

    from memostore.gcpause import small_pages

    with Storage(db_path=str(tmp_path / "s.db")) as storage:
        double(1)
    previous = _set_madvise_hugepage(before)
    try:
        seen = []
        inside, release = threading.Event(), threading.Event()

        def other_thread():
            with small_pages():
                inside.set()
                release.wait(120)  # bounds a hang only: the main thread sets it once it looked

        thread = threading.Thread(target=other_thread)
        thread.start()
        assert inside.wait(120)
        with small_pages():
            seen.append(huge_pages_setting())
            storage.cf(double).df()  # a frame inside: nested, and it ends before the other thread's block
            seen.append(huge_pages_setting())
        seen.append(huge_pages_setting())  # the other thread's block still runs
        release.set()
        thread.join()
        assert seen == [False, False, False]
        assert huge_pages_setting() is before
        storage.cf(double).df()
        assert huge_pages_setting() is before
    finally:
        _set_madvise_hugepage(previous)
