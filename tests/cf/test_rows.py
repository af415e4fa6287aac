"""Frames that never lose or invent data: constants, alternative branches, df options, siblings, eval."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from memostore import Ref, Storage, op
from memostore.errors import MemostoreError

from cf_pipeline import run_seed_like, train


@op
def make_data(n_rows, seed):
    return list(range(seed, seed + n_rows))


@op(output_names=["train", "fold_data"])
def split(data, seed):
    return data[: len(data) // 2], data[len(data) // 2:]


@op
def score(train, fold):
    return sum(train) + fold


def test_constants_are_variables_per_op_parameter_not_merged_by_content(storage):
    with storage:
        data = make_data(n_rows=100, seed=0)
        train_part, _ = split(data, seed=0)
        for fold in range(3):
            score(train_part, fold)  # fold=0 has the content of both seeds
    cf = storage.cf(score).expand_all()
    cf.graph.check_invariants()
    graph = cf.graph
    fold_var = graph.edge("score", "in", "fold").var
    seeds = {graph.edge("make_data", "in", "seed").var, graph.edge("split", "in", "seed").var}
    assert len(seeds | {fold_var}) == 3  # three variables, though they share the ref of 0
    table = cf.df()
    assert len(table) == 3
    assert sorted(table[fold_var]) == [0, 1, 2]
    n_rows = graph.edge("make_data", "in", "n_rows").var
    assert list(table[n_rows]) == [100] * 3 and table["data"].map(len).tolist() == [100] * 3
    assert table[["make_data", "split", "score"]].notna().all().all()
    assert set(table["fold_data"].map(len)) == {50}  # split's second output, read by no op


@op
def load(mode):
    return mode * 10


@op
def smooth_a(x):
    return x + 1


@op
def smooth_b(x):
    return x + 2


@op
def final(y):
    return y * 100


def test_a_variable_fed_by_alternative_ops_keeps_each_branchs_upstream(storage):
    with storage:
        for mode in (1, 2):
            x = load(mode)
            final(smooth_a(x))
            final(smooth_b(x))
        score([9], 1)  # a constant equal to a mode, given to an unrelated op
    cf = storage.cf(final).expand_all()
    cf.graph.check_invariants()
    assert sorted(cf.ops) == ["final", "load", "smooth_a", "smooth_b"]  # score is not connected
    table = cf.df()
    assert len(table) == 4 and table["mode"].notna().all() and table["load"].notna().all()
    for _, row in table.iterrows():
        branch = "smooth_a" if row["smooth_a"] is not None else "smooth_b"
        assert row[{"smooth_a": "smooth_b", "smooth_b": "smooth_a"}[branch]] is None
        assert row["y"] == row["mode"] * 10 + (1 if branch == "smooth_a" else 2)
        assert row["var_0"] == row["y"] * 100
    assert len(cf.df(join_how="inner")) == 4


@op(output_names=["model", "report"])
def fit(x):
    return x * 2, f"fit on {x}"


@op
def diagnose(model):
    return model + 1


def test_expand_back_can_bring_the_sibling_outputs_of_a_call(storage):
    with storage:
        for x in (1, 2):
            model, _ = fit(x)
            diagnose(model)
    cf = storage.cf(diagnose)
    assert "report" not in cf.expand_back("model").vars
    back = cf.expand_back("model", all_outputs=True)
    back.graph.check_invariants()
    assert back.graph.edge("fit", "out", "report").var == "report"
    table = back.df()
    assert sorted(table["report"]) == ["fit on 1", "fit on 2"]
    assert (table["report"] == table["x"].map(lambda x: f"fit on {x}")).all()
    forward = storage.cf(fit).expand_forward("model", all_inputs=True)
    assert set(forward.ops) == {"fit", "diagnose"}
    assert "report" in storage.cf(diagnose).expand_all().vars


@op
def fragile_by_three(x):
    if x % 3 == 0:
        raise ValueError(f"no multiples of 3: {x}")
    return x * 10


def test_every_df_option_combination_keeps_the_columns_it_promises(storage):
    run_seed_like(storage)
    storage.map(fragile_by_three, [{"x": x} for x in (1, 2, 3)], on_error="record", progress=False)
    for source in (train, fragile_by_three):
        cf = storage.cf(source).expand_all()
        variables, ops = sorted(cf.vars), sorted(cf.ops)
        failed = source is fragile_by_three
        for values, lazy, how, calls, versions in itertools.product(
                ("objs", "refs"), ([], variables[:1]), ("outer", "inner"), (True, False), (True, False)):
            table = cf.df(values=values, lazy_vars=lazy, join_how=how, include_calls=calls,
                          include_versions=versions)
            expected = set(variables)
            expected |= set(ops) if calls else set()
            expected |= {f"{o}.version" for o in ops} if versions else set()
            expected |= {f"{o}.status" for o in ops} if failed else set()
            assert set(table.columns) == expected, (values, lazy, how, calls, versions)
            assert len(table) == len(cf.df(join_how=how))
            for var in variables:
                cells = [c for c in table[var] if c is not None and c is not pd.NA and c == c]  # None, <NA>, NaN
                as_refs = values == "refs" or var in lazy
                assert cells and all(isinstance(c, Ref) == as_refs for c in cells), (var, values, lazy)
            if versions:
                assert set(table[f"{source.name}.version"].dropna()) == {source.version}


class Opaque:
    """A value only pickle can store."""

    def __init__(self, n):
        self.n = n


@op
def wrap(n):
    return Opaque(n), n * 2


def test_eval_loads_only_the_variables_asked_for(db_path):
    with Storage(db_path=db_path) as writer:
        for n in range(3):
            wrap(n)
    writer.close()
    reader = Storage(db_path=db_path, allow_pickle=False)
    cf = reader.cf(wrap)
    assert sorted(cf.eval("var_1")["var_1"]) == [0, 2, 4]  # var_0 is pickled and not loaded
    assert list(cf.eval("var_1", "n").columns) == ["var_1", "n"]
    with pytest.raises(MemostoreError):
        cf.eval("var_0")
    reader.close()


ODD_NAMES = ["a\x1fb", "x.version", "with space", "ünï∂", "new\nline", "q'\"", "odd_names", "odd_names.status"]


@op(output_names=ODD_NAMES)
def odd_names(**kwargs):
    return tuple(f"{name}:{kwargs}" for name in ODD_NAMES)


@op
def shout(text):
    return text.upper()


def test_any_character_in_output_and_keyword_names(storage):
    keywords = {"k\x1fw": 1, "dotted.name": 2, "sp ace": 3, "ünï": 4}
    with storage:
        outputs = odd_names(**keywords)
        shouted = shout(outputs[0])
    cf = storage.cf(odd_names).expand_all()
    cf.graph.check_invariants()
    table = cf.df(include_versions=True)
    assert len(table) == 1
    row = table.iloc[0]
    assert {name: row[name] for name in keywords} == keywords
    for name in ODD_NAMES:
        var = cf.graph.edge("odd_names", "out", name).var
        assert row[var] == f"{name}:{keywords}"
    assert row["odd_names.version"] == odd_names.version  # not taken by the output named so
    assert row["var_0"] == storage.unwrap(shouted)
    assert "a\x1fb" in repr(cf)
    assert cf.where("sp ace", lambda v: v == 3).ops["shout"] == cf.ops["shout"]
    assert list(cf.eval("k\x1fw")["k\x1fw"]) == [1]
    lineage = storage.lineage(shouted)
    assert list(lineage["via"][:2]) == ["", "text"] and set(lineage["via"][2:]) == set(keywords)
    assert dict(zip(lineage["via"][2:], lineage["value"][2:], strict=True)) == keywords
