"""Calls carried over to a new version (``mark_compatible``) are the same computations, seen under it."""

from __future__ import annotations

import pandas as pd
import pytest

from memostore import Storage, op


def pipeline(ran: list[int]):
    """``expensive(f(i))``, with ``f`` at its first version; ``ran`` lists what ``expensive`` computed."""

    @op(name="f_of_pipeline")
    def f(x):
        return x + 1

    @op(name="expensive_of_pipeline")
    def expensive(y):
        ran.append(y)
        return y * 2

    return f, expensive


def refactored():
    @op(name="f_of_pipeline")
    def f(x):
        return 1 + x  # the same results: the user knows it

    return f


def run(storage: Storage, f, expensive, inputs=range(3)) -> list[int]:
    with storage:
        results = [expensive(f(i)) for i in inputs]
    return storage.unwrap(results)


def test_carried_calls_are_one_frame_row_each_and_stay_hits(storage):
    ran: list[int] = []
    f, expensive = pipeline(ran)
    run(storage, f, expensive)
    f = refactored()
    assert storage.mark_compatible(f) == 3
    ran.clear()
    assert run(storage, f, expensive) == [2, 4, 6]
    assert ran == [] and storage.last_run.computed == 0
    table = storage.cf(expensive).expand_all().df(include_calls=False)
    assert sorted(table["x"].tolist()) == [0, 1, 2]  # three computations, three rows
    assert storage.versions(f)["calls"].tolist() == [0, 3]
    assert len(storage.calls_of(expensive)) == 3


@pytest.mark.parametrize("prune", ["drop_stale", "drop_calls(stale_calls())"])
def test_pruning_after_mark_compatible_keeps_what_is_now_a_hit(storage, prune):
    ran: list[int] = []
    f, expensive = pipeline(ran)
    run(storage, f, expensive)
    f = refactored()
    storage.mark_compatible(f)
    assert storage.stale_calls() == []
    dropped = storage.drop_stale(f) if prune == "drop_stale" else storage.drop_calls(storage.stale_calls())
    assert dropped == []
    ran.clear()
    run(storage, f, expensive)
    assert ran == [] and storage.last_run.computed == 0


def test_pruning_after_mark_compatible_still_drops_what_is_stale(storage):
    ran: list[int] = []
    f, expensive = pipeline(ran)
    run(storage, f, expensive, [0, 1])

    @op(name="f_of_pipeline")
    def f(x):
        return x + 10  # other results: a new version, computed anew

    run(storage, f, expensive, [0, 1])

    @op(name="f_of_pipeline")
    def f(x):
        return 10 + x  # the same results as the one before

    assert storage.mark_compatible(f) == 2  # the most recently used version
    stale = storage.stale_calls()
    assert sorted(storage.unwrap(c.inputs["x"]) for c in stale) == [0, 1]  # the first version's calls
    dropped = storage.drop_calls(stale)
    assert sorted(c.op for c in dropped) == ["expensive_of_pipeline"] * 2 + ["f_of_pipeline"] * 2
    ran.clear()
    assert run(storage, f, expensive, [0, 1]) == [20, 22]
    assert ran == []
    assert len(storage.cf(expensive).expand_all().df()) == 2


def test_carrying_moves_every_level_downstream(storage):
    """A diamond: ``join`` reads ``f``'s output directly and through ``g``."""

    @op(name="f_of_diamond")
    def f(x):
        return [x, x + 1]

    @op(name="g_of_diamond")
    def g(values):
        return sum(values)

    @op(name="join_of_diamond")
    def join(values, total):
        return f"{values}:{total}"

    def diamond(x):
        values = f(x)
        return join(values, g(values))

    with storage:
        first = [diamond(x) for x in (1, 2)]
    before = storage.lineage(first[0])

    @op(name="f_of_diamond")
    def f(x):  # noqa: F811
        return [x, 1 + x]

    storage.mark_compatible(f)
    with storage:
        again = [diamond(x) for x in (1, 2)]
    assert storage.last_run.computed == 0
    assert storage.unwrap(again) == ["[1, 2]:3", "[2, 3]:5"]
    assert len(storage.cf(join).expand_all().df()) == 2
    after = storage.lineage(again[0])
    assert after["op"].tolist() == before["op"].tolist()
    assert set(after["version"].dropna()) == {storage.version_of(f), storage.version_of(g), storage.version_of(join)}
    assert storage.stale_calls() == []


def test_a_call_stored_under_both_versions_with_other_results_is_kept_where_it_was(storage):
    """The user's word was wrong for one input: its former call stays (stale), nothing is lost."""
    ran: list[int] = []
    f, expensive = pipeline(ran)
    run(storage, f, expensive, [0, 1])

    @op(name="f_of_pipeline")
    def f(x):
        return x + 1 if x else 100  # differs on 0

    run(storage, f, expensive, [0])
    storage.mark_compatible(f, from_version=storage.versions(f)["version"][0])
    stale = storage.stale_calls()
    assert [(c.op, storage.unwrap(c.inputs).popitem()[1]) for c in stale] == [("f_of_pipeline", 0)]
    ran.clear()
    assert run(storage, f, expensive, [0, 1]) == [200, 4]
    assert ran == []
    table = storage.cf(expensive).expand_all().df(include_calls=False)
    # The former computation on 0 is still stored, and shown beside the current one.
    assert sorted(zip(table["x"], table["y"], table["var_0"], strict=True)) == [(0, 1, 2), (0, 100, 200), (1, 2, 4)]


def test_carried_calls_are_found_by_a_later_process(db_path):
    ran: list[int] = []
    f, expensive = pipeline(ran)
    run(Storage(db_path=db_path), f, expensive)
    f = refactored()
    Storage(db_path=db_path).mark_compatible(f)
    later = Storage(db_path=db_path)
    ran.clear()
    run(later, f, expensive)
    assert ran == [] and later.last_run.computed == 0
    assert later.stale_calls() == [] and later.drop_stale(f) == []
    assert not pd.isna(later.cf(expensive).expand_all().df(include_calls=False)).any().any()


def test_going_back_to_the_former_code_after_mark_compatible_finds_the_results(storage):
    ran: list[int] = []
    _, expensive = pipeline(ran)
    versions = []
    for code in ("x + 1", "1 + x", "x + 1"):  # a refactor marked compatible, then the code before it again
        namespace: dict = {"op": op}
        exec(f"@op(name='f_going_back')\ndef f(x):\n    return {code}\n", namespace)
        f = namespace["f"]
        if len(versions) == 1:
            storage.mark_compatible(f)
        ran.clear()
        assert run(storage, f, expensive) == [2, 4, 6]
        versions.append(storage.version_of(f))
        assert ran == ([1, 2, 3] if len(versions) == 1 else [])
    assert versions[2] == versions[1]  # the former code was declared the same as the refactor
    assert storage.stale_calls() == [] and len(storage.cf(expensive).expand_all().df()) == 3
