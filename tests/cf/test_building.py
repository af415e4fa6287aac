"""Frames from named groups of Refs, from hids, and from lists mixing Refs, Calls, hids and ops."""

from __future__ import annotations

import pytest

from memostore import FrameArgumentError, NotStoredError, UnknownOpError, op

from cf_pipeline import evaluate, run_seed_like, train


@op
def sq(x):
    return x * x


@op
def named_v(v):
    return v + 1


def test_named_groups_of_refs_become_variables_to_expand(storage):
    run_seed_like(storage)
    table = storage.cf(train).expand_all().df(values="refs")
    models, scores = list(table["var_0"]), table["var_2"]  # scores: a column with gaps (model 3)
    cf = storage.cf({"model": models, "test_acc": scores})
    assert set(cf.vars) == {"model", "test_acc"} and not cf.ops
    assert cf.vars["model"] == {r.hid for r in models} and len(cf.vars["test_acc"]) == 2
    grown = cf.expand_back("test_acc")
    assert "    test_acc@output_0 = evaluate(model=model, x_test=x_test)" in repr(grown)
    assert len(grown.df()) == 3  # two evaluated models and the third, alone
    one = storage.cf({"best": models[0]})
    assert one.vars == {"best": {models[0].hid}}
    by_hid = storage.cf({"model": [r.hid for r in models]})
    assert by_hid.vars == cf.select_nodes(["model"]).vars


def test_groups_are_checked(storage):
    run_seed_like(storage)
    call = next(iter(storage.cf(train).calls_by_op()["train"]))
    with pytest.raises(FrameArgumentError, match="group 'model' holds Call"):
        storage.cf({"model": [call]})
    with pytest.raises(FrameArgumentError, match="non-empty string"):
        storage.cf({3: []})
    with pytest.raises(NotStoredError, match="no stored ref"):
        storage.cf({"model": ["0" * 32]})


def test_a_list_mixing_refs_calls_hids_and_ops(storage):
    run_seed_like(storage)
    calls = storage.cf(train).calls_by_op()["train"]
    first, second, third = sorted(calls, key=lambda c: c.hid)
    ref = first.outputs["output_1"]
    cf = storage.cf([first, second.hid, ref.hid, evaluate])
    assert cf.ops["train"] == {first.hid, second.hid} and len(cf.ops["evaluate"]) == 2
    assert ref.hid in cf.vars["var_1"] and "v" not in cf.vars  # first's output: shown once, on first's row
    assert storage.cf(third.hid).ops == {"train": {third.hid}}
    assert storage.cf(ref.hid).vars == {"v": {ref.hid}}
    with pytest.raises(NotStoredError, match="no stored call or ref"):
        storage.cf([first, "f" * 32])
    with pytest.raises(TypeError, match="dict of named groups"):
        storage.cf([first, 3.5])


def test_an_unknown_op_name_in_a_list_raises_as_it_does_alone(storage):
    run_seed_like(storage)
    with pytest.raises(UnknownOpError, match=r"storage.cf\('trian'\): no op of that name is stored"):
        storage.cf(["train", "trian"])  # was a frame with an empty node 'trian'
    assert storage.cf(("train", "evaluate")).ops.keys() == {"train", "evaluate"}


def test_a_list_of_refs_is_one_variable_that_expands_to_one_op_node(storage):
    with storage:
        refs = [sq(i) for i in range(20)]  # a loop's (or a map's) results
    cf = storage.cf(refs)
    assert cf.vars == {"v": {r.hid for r in refs}} and not cf.ops
    grown = cf.expand_back()
    assert "    v@output_0 = sq(x=x)" in repr(grown) and len(grown.ops["sq"]) == 20
    table = grown.df(include_calls=False).sort_values("x", ignore_index=True)
    assert table.to_dict("list") == {"x": list(range(20)), "v": [i * i for i in range(20)]}  # was 20 x 60
    assert storage.cf([r.hid for r in refs]).vars == cf.vars  # hids, as mandala's cf(list of hids)
    assert storage.cf(tuple(refs)).vars == cf.vars and storage.cf(set(refs)).vars == cf.vars


def test_a_ref_and_the_call_that_made_it_are_one_row(storage):
    with storage:
        refs = [sq(i) for i in range(3)]
    call = storage.get_ref_creator(refs[0])
    for source in ([refs[0], call], [call, refs[0].hid], [sq, refs[1]]):
        cf = storage.cf(source)
        assert "v" not in cf.vars, source  # the ref is already there, as the call's output
        assert len(cf.df()) == len(cf.ops["sq"])  # was a second row holding the ref alone
    alone = storage.cf([call, refs[1], refs[2]])  # refs no given call shows: one variable beside it
    assert alone.vars["v"] == {refs[1].hid, refs[2].hid} and len(alone.df()) == 3


def test_a_list_of_refs_keeps_an_argument_named_v(storage):
    with storage:
        made = sq(4)
        other = named_v(5)
    cf = storage.cf([named_v, made])
    assert cf.vars["v"] == {storage.get_ref_creator(other).inputs["v"].hid} and cf.vars["v_1"] == {made.hid}
