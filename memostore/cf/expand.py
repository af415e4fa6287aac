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
from typing import Iterable, Protocol

from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.backends.base import Edge
from memostore.model import Call


class CallReader(Protocol):
    """The reads expansion needs (a subset of ``GraphReader``)."""

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]: ...

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]: ...

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]: ...


class CallIndex:
    """Calls and edges fetched so far, shared by frames derived from one another.

    A frame is a snapshot: what it fetched once it does not fetch again.
    """

    def __init__(self, reader: CallReader) -> None:
        self.reader = reader
        self._calls: dict[str, Call] = {}
        self._creator: dict[str, Edge] = {}  # output ref hid -> the edge that made it
        self._edges: dict[str, dict[str, list[Edge]]] = {IN: {}, OUT: {}}

    def get(self, call_hids: Iterable[str]) -> dict[str, Call]:
        """hid -> Call for these hids, fetching the missing ones in one batch."""
        wanted = set(call_hids)
        missing = wanted - self._calls.keys()
        if missing:
            for call in self.reader.calls_by_hids(missing):
                self._calls[call.hid] = call
                for name, ref in call.outputs.items():
                    self._creator[ref.hid] = Edge(call.hid, OUT, name, ref.hid)
        return {hid: self._calls[hid] for hid in wanted if hid in self._calls}

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]:
        """Store edges that consumed (IN) or produced (OUT) these refs, queried once per ref."""
        known = self._edges[direction]
        wanted = set(ref_hids)
        if direction == OUT:
            # A ref has one creator at most, and fetched calls name theirs.
            found = [self._creator[h] for h in wanted if h in self._creator]
            wanted = {h for h in wanted if h not in self._creator}
        else:
            found = []
        missing = wanted - known.keys()
        if missing:
            for hid in missing:
                known[hid] = []
            for edge in self.reader.edges_of_refs(missing, direction):
                known[edge.ref_hid].append(edge)
        for hid in wanted:
            found.extend(known[hid])
        return found


def refs_on(call: Call, direction: str) -> dict[str, str]:
    """Edge name -> ref hid for one side of a call."""
    side = call.inputs if direction == IN else call.outputs
    return {name: ref.hid for name, ref in side.items()}


def add_calls(graph: FrameGraph, node: str, op_name: str, calls: list[Call],
              new_edges: dict[str, set[str] | None]) -> FrameGraph:
    """Put ``calls`` in op node ``node`` (created if new), filling its variables.

    ``new_edges`` says, per direction, which edge names without an edge yet
    get a new variable: a set of names, or None for all of them. Refs on
    existing edges join those edges' variables.
    """
    var_refs: dict[str, set[str]] = defaultdict(set)
    edges: list[FrameEdge] = []
    for direction in (IN, OUT):
        by_name: dict[str, set[str]] = defaultdict(set)
        for call in calls:
            for name, ref_hid in refs_on(call, direction).items():
                by_name[name].add(ref_hid)
        allowed = new_edges.get(direction, set())
        for name in sorted(by_name):
            edge = graph.edge(node, direction, name)
            if edge is None:
                if allowed is not None and name not in allowed:
                    continue
                var = graph.fresh_name(name) if direction == IN else graph.output_var_name(name)
                edge = FrameEdge(node, direction, name, var)
                graph = graph.with_nodes(vars={var: ()}, edges=[edge])
                edges.append(edge)
            var_refs[edge.var] |= by_name[name]
    return graph.with_nodes(vars=var_refs, ops={node: [c.hid for c in calls]}, op_names={node: op_name})


def frame_of_calls(calls: Iterable[Call]) -> FrameGraph:
    """One op node per op holding these calls, with every input and output."""
    graph = FrameGraph.empty()
    by_op: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_op[call.op].append(call)
    for op_name in sorted(by_op):
        node = graph.fresh_name(op_name)
        graph = add_calls(graph, node, op_name, by_op[op_name], {IN: None, OUT: None})
    return graph


def expand(graph: FrameGraph, index: CallIndex, varnames: Iterable[str],
           directions: tuple[str, ...], recursive: bool) -> FrameGraph:
    """Expand the given variables back (``OUT`` edges) and/or forward (``IN``)."""
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
    stored = index.edges_of_refs(graph.vars[var], direction)
    covered = _covered(graph, direction)
    found: dict[str, set[str]] = defaultdict(set)  # call hid -> edge names
    for call_hid, _, name, _ in stored:
        if (call_hid, name) not in covered:
            found[call_hid].add(name)
    if not found:
        return graph
    calls = index.get(found)
    by_op: dict[str, list[Call]] = defaultdict(list)
    for hid in sorted(calls):
        by_op[calls[hid].op].append(calls[hid])
    for op_name in sorted(by_op):
        group = by_op[op_name]
        names = set().union(*(found[c.hid] for c in group))
        node = _node_for(graph, op_name, var, direction, names)
        graph = graph.with_nodes(edges=[FrameEdge(node, direction, n, var) for n in sorted(names)
                                        if graph.edge(node, direction, n) is None])
        other = OUT if direction == IN else IN
        graph = add_calls(graph, node, op_name, group, {direction: set(), other: None})
    return graph


def _covered(graph: FrameGraph, direction: str) -> set[tuple[str, str]]:
    """(call hid, edge name) pairs already shown on an edge of this direction."""
    covered: set[tuple[str, str]] = set()
    for edge in graph.edges:
        if edge.direction == direction:
            covered.update((hid, edge.name) for hid in graph.ops[edge.op_node])
    return covered


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
