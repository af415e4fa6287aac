"""Collections with provenance: MList/MTuple/MDict/MSet results and arguments, item by item."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

from memostore import (
    CollectionRef,
    MDict,
    MList,
    MSet,
    MTuple,
    OpDefinitionError,
    Ref,
    RefUsedAsValueError,
    Storage,
    op,
)
from memostore.collections import annotation_kind

from helpers import REPO_ROOT

ListAlias = MList


@op
def primes_below(n) -> MList[int]:
    return [p for p in range(2, n) if all(p % d for d in range(2, p))]


@op
def add_one(x):
    return x + 1


@op
def sum_all(xs):
    return sum(xs)


@op
def sum_items(xs: MList[int]):
    return sum(xs)


@op
def scores() -> MDict[float]:
    return {"a": 0.5, "b": 0.25}


@op
def weighted(parts):
    return sum(parts.values())


@op
def evens(n) -> MSet[int]:
    return {i for i in range(0, n, 2)}


@op
def with_tenfold(x) -> MTuple[int]:
    return (x, x * 10)


@op
def aliased(n) -> ListAlias[int]:
    return list(range(n))


@op
def count_primes(n):
    return len(primes_below(n))


def values_of(storage, refs):
    return [storage.unwrap(ref) for ref in refs]


def test_an_mlist_result_is_a_ref_whose_items_are_refs(storage):
    with storage:
        primes = primes_below(10)
        assert isinstance(primes, CollectionRef) and isinstance(primes, Ref)
        assert len(primes) == 4 and all(isinstance(p, Ref) for p in primes)
        assert values_of(storage, [primes[0], primes[-1]]) == [2, 7]
        assert values_of(storage, primes[1:3]) == [3, 5]
        doubled = [add_one(p) for p in primes]
    assert storage.unwrap(primes) == [2, 3, 5, 7]
    assert storage.unwrap(doubled) == [3, 4, 6, 8]
    assert str(storage.last_run).startswith("computed 5, found stored 0")  # structural calls are not counted
    with storage:
        again = primes_below(10)
        assert not again.in_memory and not again[0].in_memory  # a hit: lazy refs to the stored items
        assert [p.hid for p in again] == [p.hid for p in primes] and again.hid == primes.hid
        assert storage.unwrap(again[2]) == 5 and storage.unwrap(again) == [2, 3, 5, 7]
    assert str(storage.last_run).startswith("computed 0, found stored 1")


def test_items_are_stored_once_by_content_and_shared_across_collections(storage):
    with storage:
        small, large = primes_below(6), primes_below(10)
    assert [p.cid for p in small] == [p.cid for p in large][:3]  # one stored value per item content
    assert {p.hid for p in small}.isdisjoint(p.hid for p in large)  # each collection's items keep their past
    creator = storage.get_ref_creator(large[3])
    assert creator is not None and creator.op == "__list_items__"
    assert creator.inputs["lst"] == large and list(creator.outputs) == ["elt_0", "elt_1", "elt_2", "elt_3"]


def test_a_list_of_refs_as_an_argument_keeps_their_history(storage):
    with storage:
        result = sum_all([add_one(i) for i in range(3)])
    assert storage.unwrap(result) == 6
    frame = storage.cf(sum_all).expand_back(recursive=True)
    frame.graph.check_invariants()
    assert set(frame.graph.op_names.values()) == {"sum_all", "__list__", "add_one"}
    table = frame.df()
    assert len(table) == 1
    row = table.iloc[0]
    assert row["xs"] == [1, 2, 3] and [row[f"elt_{i}"] for i in range(3)] == [1, 2, 3]
    assert sorted(row[name] for name in ("x", "x_1", "x_2")) == [0, 1, 2]
    built = storage.get_ref_creator(storage.get_ref_creator(result).inputs["xs"])
    assert built.op == "__list__" and storage.unwrap(list(built.inputs.values())) == [1, 2, 3]
    assert {storage.get_ref_creator(ref).op for ref in built.inputs.values()} == {"add_one"}


def test_a_list_of_refs_and_the_list_of_their_values_are_one_call_by_content(storage):
    with storage:
        sum_all([add_one(i) for i in range(3)])
    with storage:
        plain = sum_all([1, 2, 3])
    assert str(storage.last_run).startswith("computed 0, found stored 1")
    with storage:
        sum_items([5, 6])
        assert storage.unwrap(sum_items([add_one(4), add_one(5)])) == 11
    assert str(storage.last_run).startswith("computed 3, found stored 1")  # sum_items, add_one, add_one; then a hit
    assert storage.unwrap(plain) == 6


def test_a_plain_list_of_values_stays_one_value(storage):
    with storage:
        result = sum_all([1, 2, 3])
    call = storage.get_ref_creator(result)
    assert storage.get_ref_creator(call.inputs["xs"]) is None  # passed by hand, no structural call


def test_an_annotated_parameter_stores_a_plain_list_item_by_item(storage):
    with storage:
        result = sum_items([4, 5])
    built = storage.get_ref_creator(storage.get_ref_creator(result).inputs["xs"])
    assert built.op == "__list__" and storage.unwrap(built.inputs) == {"elt_0": 4, "elt_1": 5}
    with pytest.raises(OpDefinitionError, match=r"op 'sum_items', argument 'xs': annotated as a list .* got int"):
        with storage:
            sum_items(3)


def test_dicts_have_keys_values_and_items_and_keep_history_as_arguments(storage):
    with storage:
        found = scores()
        assert found.keys() == ["a", "b"] and "a" in found and list(found) == ["a", "b"]
        assert storage.unwrap(found["b"]) == 0.25 and values_of(storage, found.values()) == [0.5, 0.25]
        result = weighted({"first": add_one(1), "second": add_one(2)})
    assert storage.unwrap(result) == 5 and storage.unwrap(found) == {"a": 0.5, "b": 0.25}
    with storage:
        again = scores()
        assert [key for key, _ in again.items()] == ["a", "b"] and storage.unwrap(again["a"]) == 0.5
    frame = storage.cf(weighted).expand_back(recursive=True)
    row = frame.df().iloc[0]
    assert (row["first"], row["second"], row["parts"]) == (2, 3, {"first": 2, "second": 3})


def test_sets_and_tuples(storage):
    with storage:
        found = evens(6)
        items = values_of(storage, found)
        ten = with_tenfold(1)  # an MTuple is one output, not a tuple of outputs
        assert len(ten) == 2 and values_of(storage, ten) == [1, 10]
    assert sorted(items) == [0, 2, 4] and storage.unwrap(found) == {0, 2, 4}
    assert storage.unwrap(ten) == (1, 10)
    with storage:
        assert sorted(values_of(storage, evens(6))) == [0, 2, 4]
        assert storage.unwrap(with_tenfold(1)[1]) == 10
    with pytest.raises(RefUsedAsValueError, match="a set has no order"):
        found[0]


def test_collections_refuse_what_a_ref_refuses_and_what_their_kind_lacks(storage):
    with storage:
        primes = primes_below(10)
    with pytest.raises(RefUsedAsValueError, match="keys\\(\\), values\\(\\) and items\\(\\) are for dicts"):
        primes.keys()
    with pytest.raises(RefUsedAsValueError, match="`in` on a list of Refs"):
        2 in primes  # noqa: B015
    with pytest.raises(RefUsedAsValueError):
        primes + [1]  # noqa: B015


def test_a_wrong_result_type_or_key_is_a_clear_error(storage):
    @op
    def not_a_list() -> MList[int]:
        return {"a": 1}

    @op
    def int_keys() -> MDict[int]:
        return {1: 2}

    with pytest.raises(OpDefinitionError, match="op 'not_a_list' is annotated to return a list .* returned dict"):
        with storage:
            not_a_list()
    with pytest.raises(OpDefinitionError, match="op 'int_keys', its result: an MDict needs printable str keys"):
        with storage:
            int_keys()


def test_an_mlist_op_with_several_outputs_is_refused_at_decoration():
    with pytest.raises(OpDefinitionError, match="annotated to return one MList, but declares 2 outputs"):
        @op(nout=2)
        def two() -> MList[int]:
            return [1], [2]


def test_structural_ops_are_not_listed_as_the_users_ops(storage):
    with storage:
        sum_all([add_one(i) for i in range(2)])
        primes_below(5)
    assert sorted(storage.ops()["op"]) == ["add_one", "primes_below", "sum_all"]
    assert storage.stale_calls() == []
    assert {c.op for c in storage.calls_of("__list__")} == {"__list__"}


def test_dropping_an_item_s_call_drops_the_collection_and_its_consumers(storage):
    with storage:
        first = add_one(0)
        result = sum_all([first, add_one(1)])
    dropped = storage.drop_calls([storage.get_ref_creator(first)])
    assert sorted(c.op for c in dropped) == ["__list__", "add_one", "sum_all"]
    with storage:
        sum_all([add_one(0), add_one(1)])
    assert str(storage.last_run).startswith("computed 2, found stored 1")  # add_one(0) and the sum again; add_one(1)
    assert storage.unwrap(result) == 3


def test_inside_an_op_a_collection_result_is_its_plain_value(storage):
    with storage:
        assert storage.unwrap(count_primes(10)) == 4


def test_a_collection_ref_survives_pickling_and_reopening(tmp_path):
    path = tmp_path / "store.db"
    first = Storage(db_path=path)
    with first:
        primes = primes_below(10)
    first.close()
    copy = pickle.loads(pickle.dumps(primes))
    assert isinstance(copy, CollectionRef) and [p.hid for p in copy] == [p.hid for p in primes]
    reopened = Storage(db_path=path)
    with reopened:
        again = primes_below(10)
    assert reopened.unwrap(list(again)) == [2, 3, 5, 7]
    reopened.close()


def test_annotations_are_read_as_objects_strings_and_aliases():
    assert annotation_kind(MList[int], {}) == "list" and annotation_kind(MDict, {}) == "dict"
    assert annotation_kind("memostore.MSet[str]", {}) == "set"
    assert annotation_kind("ListAlias[int]", {"ListAlias": MList}) == "list"
    assert annotation_kind("list[int]", {}) is None and annotation_kind("Undefined[int]", {}) is None
    with Storage():
        assert len(aliased(3)) == 3


def test_storage_map_takes_lists_of_refs_and_returns_collection_refs(storage):
    with storage:
        items = [add_one(0), add_one(1)]
    found = storage.map(primes_below, [{"n": 6}, {"n": 10}], progress=False)
    assert [len(primes) for primes in found] == [3, 4] and storage.unwrap(found[1][3]) == 7
    sums = storage.map(sum_all, [{"xs": items}], progress=False)
    assert storage.unwrap(sums[0]) == 3
    built = storage.get_ref_creator(storage.get_ref_creator(sums[0]).inputs["xs"])
    assert built.op == "__list__"
    with storage:
        assert sum_all([add_one(0), add_one(1)]).hid == sums[0].hid  # the same call, found by its history
    again = storage.map(primes_below, [{"n": 10}], progress=False)
    assert again.hits == 1 and [p.hid for p in again[0]] == [p.hid for p in found[1]]


def test_explain_sees_a_list_of_refs_as_the_call_would(storage):
    with storage:
        sum_all([add_one(i) for i in range(2)])
        refs = [add_one(i) for i in range(2)]
    assert storage.explain(sum_all, refs).how == "hit: this call is stored"
    assert storage.explain(sum_all, [1, 2]).how.startswith("hit: a call on the same contents")
    assert not storage.explain(sum_all, [1, 2, 4]).hit


def test_a_frame_shows_the_items_of_returned_lists_one_column_per_position(storage):
    with storage:
        primes_below(10)
        primes_below(6)
    frame = storage.cf(primes_below).expand_forward()
    frame.graph.check_invariants()
    table = frame.df().sort_values("n")
    assert list(table["var_0"]) == [[2, 3, 5], [2, 3, 5, 7]]
    assert [list(table[f"elt_{i}"]) for i in range(3)] == [[2, 2], [3, 3], [5, 5]]
    assert table["elt_3"].iloc[1] == 7 and table["elt_3"].isna().iloc[0]  # the shorter list has no 4th item


def test_the_refs_storage_map_returned_are_a_list_of_refs(storage):
    found = storage.map(add_one, [{"x": i} for i in range(3)], progress=False)
    with storage:
        result = sum_all(found)
    assert storage.unwrap(result) == 6
    built = storage.get_ref_creator(storage.get_ref_creator(result).inputs["xs"])
    assert built.op == "__list__"
    assert storage.unwrap(built.outputs["lst"]) == [1, 2, 3]
    with storage:
        assert sum_all([1, 2, 3]).hid != result.hid  # the same call by content, another history
    assert str(storage.last_run).startswith("computed 0, found stored 1")


def test_the_memostore_command_lists_only_the_users_ops(tmp_path):
    path = tmp_path / "store.db"
    storage = Storage(db_path=path)
    with storage:
        sum_all([add_one(i) for i in range(2)])
    storage.close()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    listed = subprocess.run([sys.executable, "-m", "memostore", "ops", str(path), "--format", "json"],
                            capture_output=True, text=True, env=env, timeout=120, check=True)
    assert sorted(row["op"] for row in json.loads(listed.stdout)) == ["add_one", "sum_all"]
