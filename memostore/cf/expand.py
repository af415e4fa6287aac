"""Growing a FrameGraph along the stored edges, one batched query per step.

Expanding a variable back adds the calls that produced its refs; expanding
it forward adds the calls that consumed them. Calls of one op join an
existing node of that op when that keeps the graph acyclic and each edge
name on one variable; otherwise they get a node of their own (``inc_1``).

Each (call, direction, edge name) appears on at most one edge: a produced or
consumed ref whose call edge is already shown is not expanded again. That is
what stops loops (``x = inc(x)`` ten times shows as one ``inc`` node) and
keeps a full expansion linear in the number of stored calls.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from memostore.cf.columns import CallIndex
from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.cf.hidset import HidSet, member


def add_calls(graph: FrameGraph, index: CallIndex, node: str, op_name: str, call_keys: np.ndarray,
              new_edges: dict[str, set[str] | None]) -> FrameGraph:
    """Put fetched calls (sorted keys) in op node ``node`` (created if new), filling its variables.

    ``new_edges`` says, per direction, which edge names without an edge yet
    get a new variable: a set of names, or None for all of them. Refs on
    existing edges join those edges' variables.
    """
    rows = index.edge_rows(call_keys)
    var_refs: dict[str, HidSet] = defaultdict(HidSet)
    for direction in (IN, OUT):
        side = rows[index.e_out[rows] == (direction == OUT)]
        side_names = index.e_name[side]
        allowed = new_edges.get(direction, set())
        for code in sorted(np.unique(side_names).tolist(), key=lambda c: index.names.names[c]):
            name = index.names.names[code]
            edge = graph.edge(node, direction, name)
            if edge is None and allowed is not None and name not in allowed:
                continue
            on_edge = side[side_names == code]
            refs = HidSet.from_arrays(index.e_ref_hex[on_edge], index.e_ref[on_edge])
            if edge is None:
                var = _var_holding(graph, node, direction, refs)
                if var is None:
                    var = graph.fresh_name(name) if direction == IN else graph.output_var_name(name)
                edge = FrameEdge(node, direction, name, var)
                graph = graph.with_nodes(vars={var: ()}, edges=[edge])
            var_refs[edge.var] |= refs
    return graph.with_nodes(vars=var_refs, ops={node: index.call_set(call_keys)}, op_names={node: op_name})


def frame_of_calls(index: CallIndex, keys: np.ndarray) -> FrameGraph:
    """One op node per op holding these fetched calls (sorted keys), with every input and output."""
    graph = FrameGraph.empty()
    ops = index.op_codes(keys)
    for code in sorted(np.unique(ops).tolist(), key=lambda c: index.ops.names[c]):
        op_name = index.ops.names[code]
        node = graph.fresh_name(op_name)
        graph = add_calls(graph, index, node, op_name, keys[ops == code], {IN: None, OUT: None})
    return graph


def _var_holding(graph: FrameGraph, node: str, direction: str, refs: HidSet) -> str | None:
    """A variable already holding all these refs that the new edge can join without a cycle.

    Without it, a node reached from one side (``train`` found as a consumer
    of ``X``) would put its outputs in a new variable although they are
    already shown (as ``model``, the input of ``evaluate``), and the two halves
    of each computation would land on different rows.
    """
    for name in sorted(graph.vars):
        if refs and refs <= graph.vars[name]:
            # An output edge node -> var closes a cycle if var already leads to node;
            # an input edge var -> node closes one if node already leads to var.
            cycle = graph.reaches(name, node) if direction == OUT else graph.reaches(node, name)
            if not cycle:
                return name
    return None


def expand(graph: FrameGraph, index: CallIndex, varnames: Iterable[str],
           directions: tuple[str, ...], recursive: bool) -> FrameGraph:
    """Expand the given variables back (``OUT`` edges) and/or forward (``IN``).

    As in mandala, a step adds the edges on the expanded side and the far side
    of the new calls: expanding ``model`` forward adds ``evaluate(model=...)``
    and its outputs, not its other inputs.
    """
    pending = sorted(set(varnames))
    while pending:
        var = pending.pop(0)
        for direction in directions:
            before = graph
            graph = _expand_one(graph, index, var, direction)
            if recursive and graph is not before:
                pending.extend(n for n in sorted(graph.vars)
                               if graph.vars[n] != before.vars.get(n) and n not in pending)
    return graph


def _expand_one(graph: FrameGraph, index: CallIndex, var: str, direction: str) -> FrameGraph:
    """Add the calls that produced (``OUT``) or consumed (``IN``) ``var``'s refs."""
    calls, names = index.ref_edges(graph.vars[var], direction)
    # Calls already shown on an edge of this direction and name are skipped.
    keep = np.ones(calls.size, dtype=bool)
    for edge in graph.edges:
        code = index.names.find(edge.name)
        if edge.direction == direction and code is not None:
            keep &= ~((names == code) & member(calls, graph.ops[edge.op_node].keys))
    calls, names = calls[keep], names[keep]
    if not calls.size:
        return graph
    ops = index.op_codes(calls)
    for code in sorted(np.unique(ops).tolist(), key=lambda c: index.ops.names[c]):
        op_name = index.ops.names[code]
        group = ops == code
        edge_names = {index.names.names[c] for c in np.unique(names[group]).tolist()}
        node = _node_for(graph, op_name, var, direction, edge_names)
        graph = graph.with_nodes(edges=[FrameEdge(node, direction, n, var) for n in sorted(edge_names)
                                        if graph.edge(node, direction, n) is None])
        other = OUT if direction == IN else IN
        graph = add_calls(graph, index, node, op_name, np.unique(calls[group]), {direction: set(), other: None})
    return graph


def _node_for(graph: FrameGraph, op_name: str, var: str, direction: str, names: set[str]) -> str:
    """An existing node of ``op_name`` that can take these edges to ``var``, or a new name."""
    for node in sorted(n for n, op in graph.op_names.items() if op == op_name):
        clashes = any((e := graph.edge(node, direction, n)) is not None and e.var != var for n in names)
        # An output edge node -> var closes a cycle if var already leads to node;
        # an input edge var -> node closes one if node already leads to var.
        cycle = graph.reaches(var, node) if direction == OUT else graph.reaches(node, var)
        if not clashes and not cycle:
            return node
    return graph.fresh_name(op_name)
