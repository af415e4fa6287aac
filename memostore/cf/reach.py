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
from memostore.cf.hidset import member, unique_keys
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
    """Node -> the sorted keys of its refs or calls reached from ``start`` (node -> keys).

    A value is linked to the call that made it by the ref itself, whichever
    variable shows it (as the rows of a table are): a variable may hold
    values made by an op node that has no edge to it. So passes run, in
    (reverse) topological order, until nothing more is reached.
    """
    tables = {node: NodeTable(graph, node, index) for node in graph.ops}
    order = graph.topological_nodes()
    order = order if direction == "forward" else order[::-1]
    found = {node: unique_keys(start.get(node, _NO_KEYS)) for node in order}
    grew = True
    while grew:
        grew = False
        # Forward: the refs reached calls made; back: the refs reached anywhere (their makers are reached).
        linked = _made(tables, found) if direction == "forward" else _all_refs(graph, found)
        for node in order:
            parts = [found[node]]
            if node in graph.vars and direction == "forward":
                keys = graph.vars[node].keys
                parts.append(keys[member(keys, linked)])
            elif node in graph.vars:
                for edge in graph.edges_of(node, IN):  # the values its reached consumers read
                    table = tables[edge.op_node]
                    values, present = table.edges[edge]
                    parts.append(values[present & member(table.calls, found[edge.op_node])])
            else:
                away = graph.edges_of(node, IN if direction == "forward" else OUT)
                parts.append(_reached_calls(tables[node], away, found, how, linked if direction == "back" else None))
            now = unique_keys(np.concatenate(parts))
            grew |= now.size != found[node].size
            found[node] = now
    return _with_edge_values(graph, tables, found)


def _made(tables: dict[str, NodeTable], found: dict[str, np.ndarray]) -> np.ndarray:
    """Sorted keys of the refs that the reached calls made."""
    parts = [_NO_KEYS]
    for node, table in tables.items():
        kept = member(table.calls, found[node])
        parts.extend(values[present & kept] for edge, (values, present) in table.edges.items()
                     if edge.direction == OUT)
    return unique_keys(np.concatenate(parts))


def _all_refs(graph: FrameGraph, found: dict[str, np.ndarray]) -> np.ndarray:
    return unique_keys(np.concatenate([_NO_KEYS, *(found[var] for var in graph.vars)]))


def _with_edge_values(graph: FrameGraph, tables: dict[str, NodeTable],
                      found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``found`` with the values on the edges of every call kept: a frame never shows a call without
    them (a starting call's inputs made by a node not followed, a weakly reached call's other outputs)."""
    extra: dict[str, list[np.ndarray]] = {var: [found[var]] for var in graph.vars}
    for node, table in tables.items():
        kept = member(table.calls, found[node])
        for edge, (values, present) in table.edges.items():
            extra[edge.var].append(values[present & kept])
    return {**found, **{var: unique_keys(np.concatenate(parts)) for var, parts in extra.items()}}


def _reached_calls(table: NodeTable, edges: list[FrameEdge], found: dict[str, np.ndarray], how: How,
                   linked: np.ndarray | None) -> np.ndarray:
    """The calls of an op node whose values on these edges are reached (all of them, or any), in the
    edge's variable or among ``linked`` refs."""
    every = np.ones(table.calls.size, dtype=bool)
    some = np.zeros(table.calls.size, dtype=bool)
    for edge in edges:
        values, present = table.edges[edge]
        hit = member(values, found[edge.var])
        if linked is not None:
            hit |= member(values, linked)
        hit &= present
        every &= ~present | hit
        some |= hit
    return table.calls[some & every] if how == "strong" else table.calls[some]


def source_elements(graph: FrameGraph, index: CallIndex, nodes: list[str]) -> dict[str, np.ndarray]:
    """For each of these nodes, its refs that no call of the graph made, or its calls that read none
    of the refs of the graph on their edges: where the computations through it start."""
    tables = {node: NodeTable(graph, node, index) for node in graph.ops}
    made = _made(tables, {node: graph.ops[node].keys for node in graph.ops})
    start: dict[str, np.ndarray] = {}
    for node in nodes:
        if node in graph.vars:
            keys = graph.vars[node].keys
            start[node] = keys[~member(keys, made)]
        else:
            table = tables[node]
            fed = np.zeros(table.calls.size, dtype=bool)
            for edge in graph.edges_of(node, IN):
                values, present = table.edges[edge]
                fed |= present & member(values, graph.vars[edge.var].keys)
            start[node] = table.calls[~fed]
    return start


def restricted(graph: FrameGraph, found: Mapping[str, np.ndarray]) -> FrameGraph:
    """The graph's nodes holding only the reached refs and calls."""
    return graph.restricted({v: graph.vars[v].restricted_to(found.get(v, _NO_KEYS)) for v in graph.vars},
                            {o: graph.ops[o].restricted_to(found.get(o, _NO_KEYS)) for o in graph.ops})
