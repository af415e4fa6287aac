"""Knowing what ran: storage.last_run after a block or a map, and the counts on map results."""

from memostore import Storage, op


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
