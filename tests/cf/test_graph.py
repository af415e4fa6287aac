"""FrameGraph: naming, navigation, and its invariants."""

import pytest

from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.cf.hidset import HidSet
from memostore.hashing import content_id

R1, R2, R3, C1, C2 = (content_id(name) for name in ("r1", "r2", "r3", "c1", "c2"))


def chain() -> FrameGraph:
    return FrameGraph.empty().with_nodes(
        vars={"x": [R1], "y": [R2], "z": [R3]},
        ops={"f": [C1], "g": [C2]},
        op_names={"f": "f", "g": "g"},
        edges=[FrameEdge("f", IN, "a", "x"), FrameEdge("f", OUT, "output_0", "y"),
               FrameEdge("g", IN, "b", "y"), FrameEdge("g", OUT, "output_0", "z")],
    )


def test_navigation():
    graph = chain()
    graph.check_invariants()
    assert graph.topological_ops() == ["f", "g"]
    assert graph.reaches("x", "z") and not graph.reaches("z", "x")
    assert graph.edge("g", IN, "b").var == "y"
    assert {(e.op_node, e.name) for e in graph.edges_of("y")} == {("f", "output_0"), ("g", "b")}


def test_fresh_names_and_output_names():
    graph = chain()
    assert graph.fresh_name("x") == "x_1" and graph.fresh_name("new") == "new"
    assert graph.output_var_name("output_3") == "var_0"
    assert graph.output_var_name("model") == "model"


def test_invariants_catch_cycles_and_dangling_edges():
    cyclic = chain().with_nodes(edges=[FrameEdge("f", IN, "c", "z")])
    with pytest.raises(AssertionError, match="acyclic"):
        cyclic.check_invariants()
    dangling = chain().with_nodes(edges=[FrameEdge("h", IN, "a", "x")])
    with pytest.raises(AssertionError, match="op name|dangling"):
        dangling.check_invariants()
    doubled = chain().with_nodes(vars={"w": []}, edges=[FrameEdge("f", IN, "a", "w")])
    with pytest.raises(AssertionError, match="two variables"):
        doubled.check_invariants()


def test_renamed_and_restricted_return_new_graphs():
    graph = chain()
    renamed = graph.renamed({"x": "inputs"})
    assert "inputs" in renamed.vars and "x" in graph.vars
    assert renamed.edge("f", IN, "a").var == "inputs"
    restricted = graph.restricted({"x": HidSet()}, {"f": HidSet.of([C1])})
    assert restricted.vars["x"] == frozenset() and restricted.vars["y"] == frozenset()
    assert restricted.ops["f"] == {C1} and restricted.ops["g"] == frozenset()
    assert graph.ops["f"] == {C1} and graph.vars["y"] == {R2}
