"""ComputationFrame from the user's side: seed 002's calls, restriction, algebra."""

from __future__ import annotations

import pytest

from memostore import FrameArgumentError, Storage, UnknownNodeError, op

from cf_pipeline import evaluate, generate, grown_train, inc, run_loop, run_seed_like, summarize, train


def test_frame_of_an_op_names_inputs_and_outputs(storage):
    run_seed_like(storage)
    cf = storage.cf(train)
    assert sorted(cf.vars) == ["var_0", "var_1", "x_train", "y_train"]
    assert list(cf.ops) == ["train"] and len(cf.ops["train"]) == 3
    assert repr(cf) == "\n".join([
        "ComputationFrame with:",
        "    4 variable(s) (12 unique refs)",
        "    1 operation(s) (3 unique calls)",
        "Computational graph:",
        "    var_0@output_0, var_1@output_1 = train(x_train=x_train, y_train=y_train)",
    ])
    assert "<pre>ComputationFrame with:" in cf._repr_html_()  # the text form, folded under the drawing


def test_expand_back_and_forward_one_step(storage):
    run_seed_like(storage)
    cf = storage.cf(train).rename(vars={"var_0": "model", "var_1": "acc"})
    back = cf.expand_back(["x_train", "y_train"])
    assert "    x_train@output_0, y_train@output_2 = generate(seed=seed)" in repr(back)
    assert set(back.ops) == {"generate", "train"}
    forward = cf.expand_forward(["model"])
    assert "    var_0@output_0 = evaluate(model=model)" in repr(forward)
    assert len(forward.ops["evaluate"]) == 2
    assert "x_test" not in forward.vars  # only edges from the expanded variable are added
    assert set(cf.ops) == {"train"}  # frames are values


def test_expand_all_reaches_the_connected_web(storage):
    run_seed_like(storage)
    full = storage.cf(train).expand_all()
    assert set(full.ops) == {"generate", "train", "evaluate"}
    assert {len(full.ops[o]) for o in full.ops} == {3, 2}
    table = full.df()
    assert len(table) == 3
    assert table["evaluate"].isna().sum() == 1
    # Every input and output of every call: evaluate's x_test, and generate's unused fourth output.
    assert list(table.columns) == ["seed", "generate", "x_train", "x_test", "y_train", "var_3", "train", "var_0",
                                   "var_1", "evaluate", "var_2"]


def test_seed_002_row_counts_and_nan_pattern(storage):
    run_seed_like(storage)
    train_grown = grown_train()
    assert train_grown.version == train.version
    with storage:
        x_train, x_test, y_train, _ = generate(1)
        for depth in (7, 8):  # not 1, 2: values passed by hand with equal content share a ref
            train_grown(x_train, y_train, depth=depth)
        same = train_grown(x_train, y_train)  # NewArgDefault: the stored call is reused
    assert not same[0].in_memory
    cf = storage.cf(train).expand_all().rename(vars={"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc"})
    df = cf.df(lazy_vars=["x_train", "y_train"])
    assert len(df) == 5
    assert df["depth"].isna().sum() == 3 and df["eval_acc"].isna().sum() == 3
    assert len(cf.ops["train"]) == 5 and len(cf.ops["evaluate"]) == 2
    assert df["evaluate"].isna().sum() == 3
    assert isinstance(df.loc[0, "x_train"], type(same[0])) and not df.loc[0, "x_train"].in_memory
    chosen = df.query("train_acc > 0.15 and depth == 8")
    assert len(chosen) == 1 and chosen["model"].iloc[0]["depth"] == 8
    dropped = storage.drop_calls(df.query("train_acc < 0.3")["train"], delete_dependents=True)
    assert {c.op for c in dropped} == {"train", "evaluate"}
    after = storage.cf(train).expand_all().df()
    assert len(after) == 5 - len([c for c in dropped if c.op == "train"])


def test_inner_join_keeps_only_complete_computations(storage):
    run_seed_like(storage)
    full = storage.cf(train).expand_all()
    assert len(full.df(join_how="inner")) == 2
    assert full.df(join_how="inner")["evaluate"].notna().all()


def test_values_refs_and_calls(storage):
    run_seed_like(storage)
    cf = storage.cf(train)
    refs = cf.df(values="refs")
    assert all(type(r).__name__ == "Ref" for r in refs["var_1"])
    no_calls = cf.df(include_calls=False)
    assert "train" not in no_calls.columns
    versions = cf.df(include_versions=True)
    assert set(versions["train.version"]) == {train.version}
    assert list(cf.eval("var_1").columns) == ["var_1"]


def test_values_are_loaded_in_one_batch_and_lazy_vars_not_at_all(storage, monkeypatch):
    run_seed_like(storage)
    cf = storage.cf(train).expand_all()
    batches = []
    original = storage.reader.load_value_column

    def counting(cids):
        batches.append(len(cids))
        return original(cids)

    refs = cf.df(values="refs")
    shown = {ref.cid for var in cf.vars if var != "x_train" for ref in refs[var] if ref is not None}
    monkeypatch.setattr(storage.reader, "load_value_column", counting)
    cf.df(lazy_vars=["x_train"])
    assert batches == [len(shown)]


def test_branch_and_merge(storage):
    with storage:
        a, b, _, _ = generate(7)  # a branch: generate's outputs feed inc twice
        left = inc(a)
        right = inc(b)
        summarize(left, right)  # a merge of two op-made inputs
        summarize(a, 100)
    cf = storage.cf(summarize).expand_all()
    assert sorted(cf.ops) == ["generate", "inc", "inc_1", "summarize"]
    assert {len(calls) for calls in cf.ops.values()} == {1, 2}
    table = cf.df()
    assert len(table) == 2  # one row per computation, each with the generate call it started from
    merged = table[table["var_0"] == 17].iloc[0]
    assert (merged["a"], merged["b"], merged["x"]) == (8, 9, 7)
    assert merged["inc"] is not None and merged["summarize"] is not None and merged["generate"] is not None
    direct = table[table["var_0"] == 107].iloc[0]
    assert (direct["a"], direct["b"]) == (7, 100) and direct["generate"] is not None


@op
def make_data(seed):
    return [seed, seed + 1]


@op
def fit_scale(data, scale):
    return [x * scale for x in data]


@op
def score_fit(model, data):
    return sum(model) - sum(data)


def test_a_value_feeding_two_ops_joins_their_rows(storage):
    """data feeds fit_scale and score_fit; fit_scale, reached forward from data, outputs model.

    Its outputs must land in ``model`` (score_fit's input), not in a new
    variable, or each computation would be split over two rows.
    """
    with storage:
        for seed in range(3):
            data = make_data(seed)
            for scale in (10, 20):
                score_fit(fit_scale(data, scale), data)
    table = storage.cf(score_fit).expand_all().df()
    assert len(table) == 6 and not table.isna().any().any()
    assert sorted(table.columns) == sorted(["seed", "make_data", "data", "fit_scale", "scale", "model",
                                            "score_fit", "var_0"])
    assert sorted(zip(table["seed"], table["scale"], strict=True)) == [(s, k) for s in range(3) for k in (10, 20)]
    assert (table["var_0"] == table["model"].map(sum) - table["data"].map(sum)).all()


def test_loops_terminate(storage):
    final = run_loop(storage, steps=10)
    cf = storage.cf(inc).expand_all()
    assert len(cf.ops["inc"]) == 10
    assert len(cf.df()) >= 10
    assert storage.cf(final).expand_all().ops  # from the last ref too


def test_frames_from_refs_calls_and_lists(storage):
    run_seed_like(storage)
    with storage:
        _, _, _, unused = generate(1)
        model, acc = train(2, 4)
    from_ref = storage.cf(acc)
    assert list(from_ref.vars) == ["v"]  # as mandala names a frame of Refs
    assert "train" in from_ref.expand_back().ops
    call = storage.get_ref_creator(acc)
    assert list(storage.cf(call).ops["train"]) == [call.hid]
    both = storage.cf([train, evaluate])
    assert set(both.ops) == {"train", "evaluate"}
    assert storage.cf("train").ops == storage.cf(train).ops


def test_where_and_isin_keep_whole_computations(storage):
    run_seed_like(storage)
    full = storage.cf(train).expand_all()
    good = full.where("var_1", lambda acc: acc >= 0.2)
    good.graph.check_invariants()
    table = good.df()
    assert set(table["var_1"]) == {0.2, 0.3}
    assert len(good.ops["generate"]) == 2 and len(good.ops["evaluate"]) == 1
    by_value = full.isin([0.1], var="var_1")
    assert len(by_value.ops["train"]) == 1
    ref = next(iter(storage.cf(train).df(values="refs")["var_1"]))
    assert by_value.isin([ref], by="hid", var="var_1").ops["train"] <= full.ops["train"]
    with pytest.raises(ValueError, match="by="):
        full.isin([1], by="value")


def test_isin_takes_one_value_alone(storage):
    run_seed_like(storage)
    full = storage.cf(train).expand_all()
    assert full.isin(0.1, var="var_1").ops == full.isin([0.1], var="var_1").ops
    ref = next(iter(storage.cf(train).df(values="refs")["var_1"]))
    assert full.isin(ref, by="hid").ops == full.isin([ref], by="hid").ops
    assert full.isin(ref.hid, by="hid").ops == full.isin([ref.hid], by="hid").ops  # a hid, not its 32 characters
    with pytest.raises(FrameArgumentError, match=r"pass it in a list: cf.isin\(\[value\]\)"):
        full.isin({"a": 1})


def test_union_intersection_difference(storage):
    run_seed_like(storage)
    full = storage.cf(train).expand_all()
    low = full.where("var_1", lambda acc: acc < 0.2)
    high = full.where("var_1", lambda acc: acc >= 0.2)
    assert (low | high).ops == full.ops
    assert (low & high).ops["train"] == set()
    assert (full - low).ops["train"] == high.ops["train"]
    with pytest.raises(TypeError, match="same storage"):
        full | Storage().cf(train)


@op
def scale(x, factor):
    return x * factor


@op
def shift(x):
    return x + 1


def test_difference_keeps_the_values_its_calls_share_with_the_frame_subtracted(storage):
    with storage:
        scale(10, 2), scale(10, 3)
    cf = storage.cf(scale)
    left = cf - cf.where("factor", lambda v: v == 2)
    left.graph.check_invariants()
    assert left.vars["x"] == cf.vars["x"] and len(left.ops["scale"]) == 1  # x=10 is read by the call left
    assert left.df(include_calls=False).to_dict("records") == [{"factor": 3, "x": 10, "var_0": 30}]
    assert len((cf - cf).df()) == 0 and (cf - cf).vars == {"factor": set(), "x": set(), "var_0": set()}


def test_union_gives_every_call_the_values_on_its_edges(storage):
    with storage:
        scale(10, 2), scale(20, 3)
    cf = storage.cf(scale)
    two, three = (cf.where("factor", lambda v, f=f: v == f) for f in (2, 3))
    joined = two | three.drop_var("x")  # three's calls still read an x: the union shows it
    assert joined.vars["x"] == cf.vars["x"]
    assert joined.df(include_calls=False).sort_values("x").to_dict("records") == [
        {"factor": 2, "x": 10, "var_0": 20}, {"factor": 3, "x": 20, "var_0": 60}]


def test_union_joins_variables_on_the_same_edge_whatever_their_names(storage):
    with storage:
        scale(10, 2), shift(10)
    cf = storage.cf(scale)
    joined = cf | cf.rename(vars={"x": "y"})  # one argument of one op node: one variable, this frame's name
    assert joined.vars == cf.vars and joined.graph.edges == cf.graph.edges
    apart = cf | storage.cf(shift).rename(vars={"x": "scale"})  # was an error: 'scale' names an op node here
    assert sorted(apart.vars) == ["factor", "scale_1", "var_0", "var_1", "x"] and apart.ops.keys() == {"scale", "shift"}
    assert "    var_1@output_0 = shift(x=scale_1)" in repr(apart)


@op
def plus_one(x):
    return x + 1


@op
def times_ten(y):
    return y * 10


def test_union_keeps_apart_variables_that_only_share_a_made_up_name(storage):
    # Both frames call their op's output var_0: the union used to make them one variable, and a row read
    # x=1, var_0=20 ("plus_one(1) = 20") beside rows missing x.
    with storage:
        for i in range(2):
            times_ten(plus_one(i))
    union = storage.cf(plus_one) | storage.cf(times_ten)
    assert "    var_0@output_0 = plus_one(x=x)" in repr(union) and "    var_1@output_0 = times_ten(y=y)" in repr(union)
    rows = union.df(include_calls=False).sort_values("x").to_dict("records")
    assert rows == [{"x": 0, "var_0": 1, "y": 1, "var_1": 10}, {"x": 1, "var_0": 2, "y": 2, "var_1": 20}]
    assert union.merge_vars().df(include_calls=False).sort_values("x").to_dict("records") == [
        {"x": 0, "y": 1, "var_1": 10}, {"x": 1, "y": 2, "var_1": 20}]
    both = storage.cf(plus_one) & storage.cf(times_ten)  # no node in common, though both have a var_0
    assert not both.vars and not both.ops
    left = storage.cf(plus_one) - storage.cf(times_ten)  # times_ten's var_0 is not plus_one's: nothing goes
    assert left.vars == storage.cf(plus_one).vars and left.ops == storage.cf(plus_one).ops


def test_union_raises_when_a_variable_is_two_variables_of_the_other_frame(storage):
    run_seed_like(storage)
    apart = storage.cf(train) | storage.cf(evaluate)  # train's model output and evaluate's model input
    assert {"var_0", "model"} <= set(apart.vars)
    together = storage.cf(train).expand_forward("var_0")  # one variable: made by train, read by evaluate
    with pytest.raises(FrameArgumentError, match="variable 'var_0' of the right frame is on edges of 'model' "
                                                 "and 'var_0' in the left one"):
        apart | together
    assert (apart.merge_vars() | together).ops == together.ops
    assert (together | apart).vars["var_0"] == together.vars["var_0"]


def test_union_of_groups_of_refs_joins_them_by_name(storage):
    with storage:
        refs = [plus_one(i) for i in range(3)]
    joined = storage.cf({"n": refs[:2]}) | storage.cf({"n": refs[1:]})
    assert joined.vars == {"n": {r.hid for r in refs}}
    assert (storage.cf(refs[:2]) | storage.cf(refs[2])).vars == {"v": {r.hid for r in refs}}


def test_rename_and_inplace(storage):
    run_seed_like(storage)
    cf = storage.cf(train)
    renamed = cf.rename(vars={"var_0": "model"})
    assert "model" in renamed.vars and "var_0" in cf.vars
    assert cf.rename(vars={"var_0": "model"}, inplace=True) is cf and "model" in cf.vars
    with pytest.raises(ValueError, match="two nodes"):
        cf.rename(vars={"model": "var_1"})
    with pytest.raises(KeyError, match="no variable"):
        cf.rename(vars={"missing": "x"})


def test_names_are_deterministic(storage):
    run_seed_like(storage)
    assert repr(storage.cf(train).expand_all()) == repr(storage.cf(train).expand_all())


def test_empty_op_frame(storage):
    cf = storage.cf(summarize)
    assert cf.ops == {"summarize": set()} and len(cf.df()) == 0


def test_lazy_vars_naming_no_variable_raise_unknown_node_error(storage):
    run_seed_like(storage)
    with pytest.raises(UnknownNodeError, match="lazy_vars names no variable"):
        storage.cf(train).df(lazy_vars=["nope"])
