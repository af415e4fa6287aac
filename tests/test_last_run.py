"""Knowing what ran: storage.last_run after a block or a map, and the counts on map results."""

import concurrent.futures
import threading

import pytest

from memostore import NotMemoizedWarning, Storage, op


@op
def square(x):
    return x * x


@op
def plus_one(x):
    return x + 1


@op
def picky(x):
    if x % 2:
        raise ValueError("odd")
    return x


def test_last_run_counts_what_a_block_computed_and_found(storage):
    assert storage.last_run is None
    with storage:
        square(2)
    with storage:
        with storage:  # a nested block is part of the outer one
            stored = square(2)
            plus_one(stored)  # unwrapping the stored input loads it, it does not run it
        square(3)
    run = storage.last_run
    assert (run.computed, run.hits, run.failed) == (2, 1, 0)
    assert stored.in_memory  # loaded, yet its call did not run: in_memory is not "computed"
    assert run.duration_s >= 0 and run.started_at > 0


def test_map_results_say_what_was_computed_and_found(storage):
    with storage:
        square(1)
    results = storage.map(square, [{"x": x} for x in (1, 2, 3, 3)], progress=False)
    assert (results.computed, results.hits, results.failed) == (3, 1, 0)  # the two items x=3 share one call
    assert (storage.last_run.computed, storage.last_run.hits) == (2, 1)
    failing = storage.map(picky, [{"x": x} for x in range(4)], on_error="record", progress=False)
    assert (failing.computed, failing.hits, failing.failed) == (2, 0, 2)
    assert storage.last_run.failed == 2
    again = storage.map(picky, [{"x": x} for x in range(4)], on_error="record", progress=False)
    assert (again.computed, again.hits, again.failed) == (0, 2, 2)


def test_last_run_prints_as_one_line_for_people():
    storage = Storage()
    with storage:
        inc_for_report(1)
        inc_for_report(1)
    text = str(storage.last_run)
    assert text.startswith("computed 1, found stored 1, failed 0 in ") and text.endswith(" UTC)")


@op
def inc_for_report(x):
    return x + 1


@op
def pair(x):
    return [x, square(x)]  # a nested call: computed (or found) where pair runs


def run_in(how, items):
    """``pair`` over items, the way a user would spread it inside a block."""
    if how in ("loky", "threading"):
        import joblib

        return joblib.Parallel(n_jobs=2, backend=how)(joblib.delayed(pair)(x) for x in items)
    if how == "threads":
        found = []
        workers = [threading.Thread(target=lambda x=x: found.append(pair(x))) for x in items]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return found
    pool_class = concurrent.futures.ProcessPoolExecutor if how == "process pool" else \
        concurrent.futures.ThreadPoolExecutor
    with pool_class(2) as pool:
        return list(pool.map(pair, items))


@pytest.mark.parametrize("how", ["loky", "threading", "process pool", "thread pool", "threads"])
def test_last_run_counts_calls_computed_and_found_by_workers(storage, how):
    if how in ("loky", "process pool") and storage.config.db_path is None and storage.config.db_url is None:
        # Worker processes cannot reach an in-memory storage: a warning says so, and nothing ran here.
        with storage, pytest.warns(NotMemoizedWarning):
            run_in(how, [1, 2])
        assert storage.last_run.computed == 0
        return
    with storage:
        square(2)  # stored beforehand: the workers' nested square(2) finds it
    with storage:
        run_in(how, [1, 2, 3, 4])
        plus_one(100)  # and a call in the block itself
    run = storage.last_run
    assert (run.computed, run.hits, run.failed) == (4 + 3 + 1, 1, 0)
    with storage:
        refs = run_in(how, [1, 2, 3, 4, 5])
    run = storage.last_run
    assert (run.computed, run.hits, run.failed) == (2, 4, 0)  # pair(5) and its square(5) ran
    assert storage.unwrap(refs)[-1] == [5, 25]


def test_last_run_counts_a_call_that_raised_inside_a_block(storage):
    with storage:
        picky(2)
        with pytest.raises(ValueError):
            picky(3)
    assert (storage.last_run.computed, storage.last_run.failed) == (1, 1)


def test_map_failures_agree_with_last_run(storage):
    items = [{"x": x} for x in range(6)]
    first = storage.map(picky, items, on_error="record", progress=False)
    assert (first.failed, first.failed_earlier) == (3, 0)
    assert (storage.last_run.failed, storage.last_run.failed_earlier) == (3, 0)
    again = storage.map(picky, items, on_error="record", progress=False)  # recorded failures are not run again
    assert (again.computed, again.hits, again.failed, again.failed_earlier) == (0, 3, 3, 3)
    run = storage.last_run
    assert (run.computed, run.hits, run.failed, run.failed_earlier) == (0, 3, 3, 3)
    assert "failed 3 (3 recorded earlier, not run again)" in str(run)
    skipped = storage.map(picky, [{"x": x} for x in range(10, 14)], on_error="skip", progress=False)
    assert skipped.failed == storage.last_run.failed == 2  # not recorded, still failed
    retried = storage.map(picky, items, on_error="record", retry_failed=True, progress=False)
    assert (retried.failed, retried.failed_earlier) == (3, 0) == (storage.last_run.failed,
                                                                  storage.last_run.failed_earlier)
