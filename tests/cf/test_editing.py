"""Editing frames: select, drop, follow computations up, down and between nodes, merge variables."""

from __future__ import annotations

import pytest

from memostore import FrameArgumentError, UnknownNodeError, op

from cf_pipeline import evaluate, inc, run_loop, run_seed_like, train

NAMES = {"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc", "var_3": "extra"}


@pytest.fixture
def full(storage):
    """seed -> generate -> x_train, y_train -> train -> model -> evaluate(x_test) -> eval_acc; model 3 not evaluated."""
    run_seed_like(storage)
    return storage.cf(train).expand_all().rename(vars=NAMES)


def nodes(frame):
    return set(frame.vars) | set(frame.ops)


def test_select_nodes_keeps_those_nodes_whole_and_the_edges_between_them(full):
    before = repr(full)
    picked = full.select_nodes(["x_train", "train", "model"])
    assert nodes(picked) == {"x_train", "train", "model"}
    assert repr(picked).endswith("    model@output_0 = train(x_train=x_train)")
    assert picked.ops["train"] == full.ops["train"] and picked.vars["model"] == full.vars["model"]
    assert list(picked.df(values="refs").columns) == ["x_train", "train", "model"] and len(picked.df()) == 3
    assert repr(full) == before  # frames are values
    with pytest.raises(UnknownNodeError, match="no node named \\['modle'\\]"):
        full.select_nodes(["modle"])
    same = full.select_nodes(nodes(full))
    assert repr(same) == before


def test_drop_var_and_drop_op(full):
    without_extra = full.drop_var("extra")
    assert "extra" not in without_extra.vars and len(without_extra.ops["generate"]) == 3
    assert "var_3" not in repr(without_extra) and len(without_extra.df()) == 3
    without_evaluate = full.drop_op("evaluate")
    assert set(without_evaluate.ops) == {"generate", "train"}
    assert without_evaluate.vars["eval_acc"] == full.vars["eval_acc"]  # variables keep their refs
    table = without_evaluate.df()
    assert len(table) == 3 + 2  # three trainings, and the two scores with no call that made them in the frame
    assert set(table["eval_acc"].dropna()) == {1.333, 1.5}
    assert set(full.ops) == {"generate", "train", "evaluate"}
    with pytest.raises(FrameArgumentError, match="drop_var\\('model'\\)"):
        full.drop_op("model")
    with pytest.raises(UnknownNodeError, match="no variable named \\['train'\\]"):
        full.drop_var("train")
    full.drop_op("evaluate", inplace=True)
    assert "evaluate" not in full.ops


def test_upstream_holds_what_led_to_the_values(full):
    up = full.upstream("model")
    assert nodes(up) == {"seed", "generate", "x_train", "y_train", "train", "model"}
    assert len(up.ops["generate"]) == 3 and len(up.df()) == 3
    scores = full.upstream("eval_acc")
    assert len(scores.ops["generate"]) == 2 and len(scores.ops["train"]) == 2 and len(scores.ops["evaluate"]) == 2
    table = scores.df()
    assert sorted(table["seed"]) == [1, 2] and table["train"].notna().all()
    # model 3 was not evaluated: its x_test is not reached, yet generate(3) made the model's inputs.
    both = full.upstream("model", "eval_acc")
    assert len(both.ops["generate"]) == 3
    assert both.df()["generate"].notna().all()
    strong = full.upstream("model", "eval_acc", how="strong")  # mandala's: every output must be reached
    assert len(strong.ops["generate"]) == 2 and len(strong.ops["train"]) == 3


def test_downstream_holds_what_followed_from_the_values(full):
    down = full.downstream("model")
    assert nodes(down) == {"model", "evaluate", "eval_acc"}
    assert len(down.vars["model"]) == 3 and len(down.df()) == 3
    from_seeds = full.downstream("seed")
    assert nodes(from_seeds) == nodes(full)
    assert from_seeds.ops == full.ops and from_seeds.vars == full.vars
    with pytest.raises(FrameArgumentError, match="how='strong' or how='weak'"):
        full.downstream("model", how="all")
    with pytest.raises(FrameArgumentError, match="at least one node"):
        full.downstream()


@op
def split_pair(i):
    return i * 10, i * 100


@op
def join_pair(left, right):
    return left + right


def test_strong_downstream_leaves_out_calls_fed_from_elsewhere(storage):
    with storage:
        for i in (1, 2):
            left, right = split_pair(i)
            join_pair(left, right)
        join_pair(left, 7)  # right=7 was not computed from any i
    cf = storage.cf(join_pair).expand_back(recursive=True)
    assert len(cf.ops["join_pair"]) == 3
    strong = cf.downstream("i")
    assert len(strong.ops["join_pair"]) == 2
    assert sorted(strong.df()["i"]) == [1, 2]
    weak = cf.downstream("i", how="weak")
    assert len(weak.ops["join_pair"]) == 3


def test_midstream_is_the_part_between_nodes(full):
    mid = full.midstream("x_train", "eval_acc")
    assert nodes(mid) == {"x_train", "train", "model", "evaluate", "eval_acc"}
    table = mid.df()
    assert len(table) == 3 and table["evaluate"].notna().sum() == 2
    assert nodes(full.midstream("model")) == {"model"}


def test_merge_vars_joins_variables_holding_the_same_refs(storage):
    run_seed_like(storage)
    apart = storage.cf(train) | storage.cf(evaluate).rename(vars={"var_0": "eval_acc"})
    assert apart.vars["var_0"] == apart.vars["model"] | apart.vars["var_0"]  # train's outputs, some evaluated
    before = apart.df()
    assert len(before) == 3 and {"model", "var_0"} <= set(before.columns)  # one value, two columns
    merged = apart.merge_vars()
    assert "var_0" not in merged.vars and "    model@output_0, var_1@output_1 = train(" in repr(merged)
    assert "    eval_acc@output_0 = evaluate(model=model, x_test=x_test)" in repr(merged)
    table = merged.df()
    assert len(table) == 3 and table["evaluate"].notna().sum() == 2 and "var_0" not in table.columns
    assert sorted(table["model"].map(str)) == sorted(before["var_0"].map(str))
    assert "var_0" in apart.vars  # frames are values
    apart.merge_vars(inplace=True)
    assert "var_0" not in apart.vars


def test_merge_vars_keeps_a_loop_and_disagreeing_values_apart(storage):
    run_loop(storage, 4)
    loop = storage.cf(inc)
    assert loop.vars["x"] & loop.vars["var_0"]  # 1, 2 and 3 are inputs and outputs
    assert loop.merge_vars().vars == loop.vars  # one variable would be a cycle


@op
def make_rows(n_rows, seed):
    return list(range(seed, seed + n_rows))


@op
def cut_rows(rows, seed):
    return rows[: len(rows) // 2]


@op
def grade(part, fold):
    return sum(part) + fold


def test_merge_vars_leaves_values_passed_by_hand_apart(storage):
    with storage:
        part = cut_rows(make_rows(n_rows=10, seed=0), seed=0)
        for fold in range(3):
            grade(part, fold)  # fold=0 is the same ref as both seeds
    cf = storage.cf(grade).expand_all()
    merged = cf.merge_vars()
    assert merged.vars == cf.vars and repr(merged) == repr(cf)


def test_merge_vars_names_a_computed_variable_after_a_group(storage):
    run_seed_like(storage)
    models = storage.cf(train).refs_by_var()["var_0"]
    joined = (storage.cf({"model": models}) | storage.cf(train)).merge_vars()
    assert "    model@output_0, var_1@output_1 = train(x_train=x_train, y_train=y_train)" in repr(joined)
    assert joined.vars["model"] == {r.hid for r in models} and len(joined.df()) == 3
