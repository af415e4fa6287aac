"""Deleting calls, their dependents, stale versions, and unreferenced values."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from memostore import Call, NotStoredError, Storage, StorageOptionError, op


@op
def load(n):
    return np.arange(n, dtype=float)


@op
def mean(values):
    return float(values.mean())


@op
def label(m):
    return f"mean={m}"


def run(storage, sizes=(2000, 3000, 4000)):
    with storage:
        return [label(mean(load(n))) for n in sizes]


def count_calls(storage):
    return sum(len(storage.cf(o).ops[o.name]) for o in (load, mean, label))


def test_drop_with_dependents_removes_everything_downstream(storage):
    run(storage)
    table = storage.cf(load).expand_all().df()
    first = table[table["n"] == 2000]["load"]
    dropped = storage.drop_calls(first, delete_dependents=True)
    assert sorted(c.op for c in dropped) == ["label", "load", "mean"]
    assert count_calls(storage) == 6
    assert len(storage.cf(load).expand_all().df()) == 2


def test_drop_without_dependents_keeps_them(storage):
    run(storage)
    call = storage.cf(load).df()["load"].iloc[0]
    dropped = storage.drop_calls(call, delete_dependents=False)
    assert dropped == [call]
    assert count_calls(storage) == 8


def test_drop_by_hid_and_missing_cells(storage):
    run(storage)
    calls = list(storage.cf(mean).df()["mean"])
    dropped = storage.drop_calls([calls[0].hid, None, float("nan")])
    assert {c.op for c in dropped} == {"mean", "label"}
    with pytest.raises(TypeError, match="Calls or call hids"):
        storage.drop_calls([42])


def test_a_whole_table_or_frame_is_refused_with_the_column_to_pass(storage):
    run(storage)
    frame = storage.cf(mean).expand_back()
    with pytest.raises(StorageOptionError, match=r"got a whole DataFrame \(its column names are no calls\); pass a "
                                                 r"column of Calls, e.g. df\['load'\] \(columns of Calls: "
                                                 r"\['load', 'mean'\]\)"):
        storage.drop_calls(frame.df())
    with pytest.raises(StorageOptionError, match=r"got a ComputationFrame; pass the calls of one of its op nodes, "
                                                 r"e.g. cf.ops\['load'\] \(op nodes: \['load', 'mean'\]\)"):
        storage.drop_calls(frame)
    assert count_calls(storage) == 9  # nothing was dropped
    assert len(storage.drop_calls(frame.ops["mean"], delete_dependents=False)) == 3


def test_dropped_calls_are_recomputed(storage):
    run(storage)
    storage.drop_calls(storage.cf(label).df()["label"])
    with storage:
        again = [label(mean(load(n))) for n in (2000, 3000, 4000)]
    assert [r.in_memory for r in again] == [True, True, True]
    assert storage.unwrap(again[0]) == "mean=999.5"


def test_cleanup_reclaims_values_and_blobs(db_path):
    storage = Storage(db_path=db_path, blob_threshold_bytes=1000)
    run(storage)
    blobs = db_path.parent / "runs.db-blobs"
    assert len([p for p in blobs.rglob("*") if p.is_file()]) == 3
    storage.drop_calls(storage.cf(load).df()["load"])
    freed = storage.cleanup_refs()
    assert freed["values"] >= 3 + 3  # the arrays and the labels; n may be shared by nothing else
    assert freed["bytes"] > 3 * 2000 * 8
    assert [p for p in blobs.rglob("*") if p.is_file()] == []
    assert "calls=0" in repr(storage) and "values=0" in repr(storage)
    with storage:
        assert storage.unwrap(load(2000)).shape == (2000,)


def test_drop_stale_keeps_the_current_version(storage):
    @op
    def scale(x):
        return x * 2

    with storage:
        scale(1)
        scale(2)

    @op
    def scale(x):  # noqa: F811 - the next version
        return x * 3

    with storage:
        scale(1)
    dropped = storage.drop_stale(scale)
    assert len(dropped) == 2 and all(c.version != scale.version for c in dropped)
    remaining = storage.cf(scale).df(include_versions=True)
    assert list(remaining["scale.version"]) == [scale.version]


@op
def both(a, b):
    return f"{a}|{b}"


def test_dependents_through_diamonds_and_long_chains_are_dropped_once(storage):
    with storage:
        root = load(3)
        m = mean(root)
        top = both(m, label(m))  # reads mean's output twice: directly and through label
        for _ in range(30):
            top = both(top, "x")
        other = load(4)
    dropped = storage.drop_calls(storage.get_ref_creator(root))
    assert len(dropped) == len({call.hid for call in dropped}) == 1 + 1 + 1 + 31
    assert [c.op for c in dropped][:3] == ["load", "mean", "label"]  # the call asked for, then in the order they ran
    assert count_calls(storage) == 1 and storage.get_ref_creator(other).op == "load"
    joined = [call for call in dropped if call.op == "both"]
    assert list(joined[0].inputs) == ["a", "b"] and list(joined[0].outputs) == ["output_0"]
    assert storage.unwrap(joined[-1].result()).count("|x") == 30


def test_a_refused_drop_leaves_nothing_for_the_next_one(storage):
    run(storage)
    calls = list(storage.cf(load).df()["load"])
    with pytest.raises(NotStoredError, match="1 of 2 calls are not stored"):
        storage.drop_calls([calls[0], "0" * 32])
    assert count_calls(storage) == 9
    dropped = storage.drop_calls(calls[1], delete_dependents=False)
    assert dropped == [calls[1]]
    assert count_calls(storage) == 8
    again = storage.drop_calls(calls[0])  # the same connection: nothing left of the drops before
    assert sorted(c.op for c in again) == ["label", "load", "mean"]
    assert count_calls(storage) == 5


@op
def inverse(x):
    return 1 / x


def test_a_dropped_failed_call_comes_back_with_its_error(storage):
    storage.map(inverse, [{"x": 2}, {"x": 0}], on_error="record", progress=False)
    failed = storage.failures(inverse)["call"][0]
    dropped = storage.drop_calls(failed)
    assert [(c.status, c.error.type, c.error.message) for c in dropped] == [
        ("failed", "builtins.ZeroDivisionError", "division by zero")]
    assert list(dropped[0].inputs) == ["x"] and dropped[0].outputs == {} and dropped[0].version == inverse.version
    assert storage.failures(inverse).empty and len(storage.calls_of(inverse)) == 1


@op
def swapped(b, a):
    return a, b


def fields(call):
    refs = {side: [(name, ref.hid, ref.cid) for name, ref in getattr(call, side).items()]
            for side in ("inputs", "outputs")}
    return (call.op, call.version, call.hid, call.cid, call.status, call.multi_output, call.started_at,
            call.duration_s, call.error, refs)


def test_dropped_calls_have_every_field_of_the_stored_calls_without_the_store(storage):
    with storage:
        left = both("x", "y")
        pair = swapped(1, left)  # argument names known before (a, b), in another order
        both(pair[0], pair[1])
    creator = storage.get_ref_creator(left)
    stored = {call.hid: fields(call) for call in storage.cf(both).expand_all().df()["both"]}
    stored[creator.hid] = fields(creator)
    stored.update({c.hid: fields(c) for c in storage.calls_of(swapped)})
    dropped = storage.drop_calls(creator)
    storage.cleanup_refs()
    storage.close()  # what a dropped call holds was read before the delete
    assert [fields(call) for call in dropped] == [stored[call.hid] for call in dropped] and len(dropped) == 3
    assert list(dropped[1].inputs) == ["b", "a"] and list(dropped[1].outputs) == ["output_0", "output_1"]
    plain = pickle.loads(pickle.dumps(dropped))
    assert [type(call) for call in plain] == [Call] * 3 and [fields(call) for call in plain] == [
        fields(call) for call in dropped]
