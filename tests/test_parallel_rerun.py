"""storage.map again over stored items: found in the calling process, no worker started."""

from __future__ import annotations

import json

import pytest

from memostore import Storage, op

from helpers import run_python

RUNS: list[int] = []


@op
def plus_one(x):
    return x + 1


@op
def double(x):
    RUNS.append(x)
    return 2 * x


RERUN = """
    import json, multiprocessing
    from memostore import Storage, op

    @op
    def twice(i):
        return 2 * i

    storage = Storage(db_path="runs.db")
    storage.map(twice, [{{"i": i}} for i in range({stored})], progress=False)  # in this process
    storage.close()
    storage = Storage(db_path="runs.db")  # reopened: nothing cached from the first map
    refs = storage.map(twice, [{{"i": i % {distinct}}} for i in range({items})], executor="processes", n_jobs=2,
                       progress=False)
    run = storage.last_run
    print(json.dumps({{"values": storage.unwrap(list(refs)), "counts": [refs.computed, refs.hits, refs.failed],
                      "last_run": [run.computed, run.hits, run.failed],
                      "workers": len(multiprocessing.active_children())}}))
"""


def rerun(tmp_path, stored: int, items: int, distinct: int) -> dict:
    code = RERUN.format(stored=stored, items=items, distinct=distinct)
    return json.loads(run_python(code, tmp_path).strip().splitlines()[-1])


def test_a_map_of_stored_items_on_processes_starts_no_worker(tmp_path):
    # 300 items, 100 distinct calls, all stored by an earlier map: one lookup answers them all.
    got = rerun(tmp_path, stored=100, items=300, distinct=100)
    assert got["workers"] == 0
    assert got["values"] == [2 * (i % 100) for i in range(300)]
    assert got["counts"] == [0, 300, 0]  # items
    assert got["last_run"] == [0, 100, 0]  # calls: equal items are one call


def test_a_map_with_one_new_item_computes_it_on_the_workers(tmp_path):
    got = rerun(tmp_path, stored=100, items=101, distinct=101)
    assert got["workers"] == 2
    assert got["values"] == [2 * i for i in range(101)]
    assert got["counts"] == [1, 100, 0]
    assert got["last_run"] == [1, 100, 0]


@pytest.mark.parametrize("executor", [None, "threads"])
def test_a_map_finds_calls_stored_with_the_same_contents_by_another_history(tmp_path, executor):
    storage = Storage(db_path=tmp_path / "runs.db")
    storage.map(double, [{"x": x} for x in (2, 3, 4)], progress=False)  # on values typed in
    with storage:
        via = [plus_one(x) for x in (1, 2, 3)]  # the same values, made by another op
    storage.close()
    storage = Storage(db_path=tmp_path / "runs.db")
    RUNS.clear()
    refs = storage.map(double, [{"x": ref} for ref in via], executor=executor, progress=False)
    assert RUNS == []
    assert (refs.computed, refs.hits) == (0, 3)
    assert storage.unwrap(list(refs)) == [4, 6, 8]
    assert [ref.hid for ref in refs] != [ref.hid for ref in storage.map(double, [{"x": x} for x in (2, 3, 4)],
                                                                         progress=False)]
