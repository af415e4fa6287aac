"""Frames whose variable is joined to one op node by several edges: every row keeps its whole lineage.

Two outputs of one call into one variable (``train, test = split(seed)``, both read by ``score``),
the items of an MList, and one variable read by two parameters of one op (``add(a=x, b=x)``):
a call matches a row when the row's ref is on any of the edges between them.
"""

from __future__ import annotations

from memostore import MList, op


@op(output_names=["train", "test"])
def split(seed):
    return [seed, 1], [seed, 2]


@op
def score(part):
    return sum(part)


@op
def gen(n) -> MList[int]:
    return list(range(n))


@op
def inc(x):
    return x + 1


@op
def make(s):
    return s * 10


@op
def add(a, b):
    return a + b


def test_two_outputs_into_one_variable_keep_their_upstream_on_every_row(storage):
    with storage:
        for seed in [10, 20]:
            train, test = split(seed)
            score(train)
            score(test)
    cf = storage.cf(score).expand_back(recursive=True)
    assert {(e.name, e.var) for e in cf.graph.edges_of("split", "out")} == {("train", "part"), ("test", "part")}
    table = cf.df(include_calls=False)
    assert sorted(zip(table["var_0"], table["seed"], strict=True)) == [(11, 10), (12, 10), (21, 20), (22, 20)]
    assert cf.df()["split"].notna().all()
    assert sorted(cf.isin(10, var="seed").eval("var_0")["var_0"]) == [11, 12]
    assert sorted(cf.where("seed", lambda s: s > 10).eval("var_0")["var_0"]) == [21, 22]
    assert len(cf.df(join_how="inner")) == 4


def test_unread_outputs_into_one_variable_each_have_a_row_with_their_call(storage):
    with storage:
        score(split(10)[1])
        score(split(20)[0])
    cf = storage.cf(score).expand_back(recursive=True)
    table = cf.df(include_calls=False)
    assert sorted((row.seed, tuple(row.part)) for row in table.itertuples()) == [
        (10, (10, 1)), (10, (10, 2)), (20, (20, 1)), (20, (20, 2))]
    assert sorted(table["var_0"].dropna().tolist()) == [12, 21]
    assert cf.df()["split"].notna().all()


def test_items_of_a_list_all_reach_the_call_that_made_the_list(storage):
    with storage:
        ys = [inc(x) for x in gen(3)]
    cf = storage.cf(inc).expand_back(recursive=True)
    table = cf.df(include_calls=False)
    assert sorted(zip(table["x"], table["n"], strict=True)) == [(0, 3), (1, 3), (2, 3)]
    assert sorted(cf.isin(3, var="n").eval("var_0")["var_0"]) == [1, 2, 3]
    assert storage.lineage(ys[1]) is not None


def test_one_variable_read_by_two_parameters_shows_each_ref_with_its_maker(storage):
    with storage:
        tens, twenties = make(1), make(2)
        add(tens, twenties)
        add(twenties, twenties)
    cf = storage.cf(make).expand_forward(recursive=True)
    [edge_var] = {e.var for e in cf.graph.edges_of("add", "in")}
    table = cf.df(include_calls=False)
    out = cf.graph.edge("add", "out", "output_0").var
    assert sorted(zip(table[out], table[edge_var], table["s"], strict=True)) == [
        (30, 10, 1), (30, 20, 2), (40, 20, 2)]
    assert sorted(cf.isin(2, var="s").eval(out)[out]) == [30, 40]
    assert sorted(cf.isin(1, var="s").eval(out)[out]) == [30]
    assert len(cf.isin(2, var="s").df()) == 2  # add(10, 20) keeps its row of 20 alone
