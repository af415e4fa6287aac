"""Which refs and calls of a frame follow from given ones, going forward or back.

``upstream``, ``downstream`` and ``midstream`` keep the nodes on the way and,
in them, the values and calls reached from the given nodes' ones. Each ref
has one producing call, so one pass over the acyclic graph in (reverse)
topological order settles every node:

- a variable holds the refs that a reached call of a neighbouring op node
  made (forward) or read (back), plus its starting refs;
- an op node holds its calls whose inputs (forward) or outputs (back) on the
  edges of the graph are *all* reached (``how="strong"``: a call fed by a
  value from outside the computations followed is left out), or *any* of them
  (``how="weak"``).

A kept call keeps the values on all its edges, reached or not: a frame
never shows a call without its inputs and outputs.
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np

from memostore.cf.columns import CallIndex
from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.cf.hidset import member
from memostore.cf.rows import NodeTable

How = Literal["strong", "weak"]
Direction = Literal["forward", "back"]
_NO_KEYS = np.empty(0, dtype=np.uint64)


def on_paths(graph: FrameGraph, nodes: list[str]) -> set[str]:
    """The given nodes and every node on a directed path from one of them to another."""
    found = set(nodes)
    after = {n: graph.reachable(n) for n in nodes}
    before = {n: graph.reachable(n, backward=True) for n in nodes}
    for start in nodes:
        for end in nodes:
            if start != end:
                found |= after[start] & before[end]
    return found


def reach(graph: FrameGraph, index: CallIndex, start: Mapping[str, np.ndarray], direction: Direction,
          how: How) -> dict[str, np.ndarray]:
    """Node -> the sorted keys of its refs or calls reached from ``start`` (node -> keys)."""
    tables = {node: NodeTable(graph, node, index) for node in graph.ops}
    order = graph.topological_nodes()
    found: dict[str, np.ndarray] = {}
    toward, away = (OUT, IN) if direction == "forward" else (IN, OUT)
    for node in order if direction == "forward" else reversed(order):
        parts = [start.get(node, _NO_KEYS)]
        if node in graph.vars:
            for edge in graph.edges_of(node, toward):  # forward: its producers; back: its consumers
                table = tables[edge.op_node]
                values, present = table.edges[edge]
                parts.append(values[present & member(table.calls, found.get(edge.op_node, _NO_KEYS))])
        else:
            parts.append(_reached_calls(tables[node], graph.edges_of(node, away), found, how))
        found[node] = np.unique(np.concatenate(parts))
    return _with_edge_values(graph, tables, found)


def _with_edge_values(graph: FrameGraph, tables: dict[str, NodeTable],
                      found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``found`` with the values on the edges of every call kept: a frame never shows a call without
    them (a starting call's inputs made by a node not followed, a weakly reached call's other outputs)."""
    extra: dict[str, list[np.ndarray]] = {var: [found[var]] for var in graph.vars}
    for node, table in tables.items():
        kept = member(table.calls, found[node])
        for edge, (values, present) in table.edges.items():
            extra[edge.var].append(values[present & kept])
    return {**found, **{var: np.unique(np.concatenate(parts)) for var, parts in extra.items()}}


def _reached_calls(table: NodeTable, edges: list[FrameEdge], found: dict[str, np.ndarray], how: How) -> np.ndarray:
    """The calls of an op node whose values on these edges are reached (all of them, or any)."""
    every = np.ones(table.calls.size, dtype=bool)
    some = np.zeros(table.calls.size, dtype=bool)
    for edge in edges:
        values, present = table.edges[edge]
        hit = present & member(values, found.get(edge.var, _NO_KEYS))
        every &= ~present | hit
        some |= hit
    return table.calls[some & every] if how == "strong" else table.calls[some]


def source_elements(graph: FrameGraph, index: CallIndex, nodes: list[str]) -> dict[str, np.ndarray]:
    """For each of these nodes, its refs that no call of the graph made on its edges, or its calls
    that read none of the refs of the graph on theirs: where the computations through it start."""
    start: dict[str, np.ndarray] = {}
    for node in nodes:
        if node in graph.vars:
            keys = graph.vars[node].keys
            made = [_edge_values(NodeTable(graph, e.op_node, index), e) for e in graph.edges_of(node, OUT)]
            start[node] = keys[~member(keys, np.unique(np.concatenate(made)))] if made else keys
        else:
            table = NodeTable(graph, node, index)
            fed = np.zeros(table.calls.size, dtype=bool)
            for edge in graph.edges_of(node, IN):
                values, present = table.edges[edge]
                fed |= present & member(values, graph.vars[edge.var].keys)
            start[node] = table.calls[~fed]
    return start


def _edge_values(table: NodeTable, edge: FrameEdge) -> np.ndarray:
    values, present = table.edges[edge]
    return values[present]


def restricted(graph: FrameGraph, found: Mapping[str, np.ndarray]) -> FrameGraph:
    """The graph's nodes holding only the reached refs and calls."""
    return graph.restricted({v: graph.vars[v].restricted_to(found.get(v, _NO_KEYS)) for v in graph.vars},
                            {o: graph.ops[o].restricted_to(found.get(o, _NO_KEYS)) for o in graph.ops})
