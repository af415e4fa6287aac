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
from typing import Any, Iterable, Protocol

from memostore.backends.base import CallRecords
from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.model import Call, Ref


class CallReader(Protocol):
    """The reads expansion needs (a subset of ``GraphReader``)."""

    def call_records(self, call_hids: Iterable[str]) -> CallRecords: ...

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]: ...

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]: ...

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]: ...


class CallIndex:
    """Calls and edges fetched so far, shared by frames derived from one another.

    A frame is a snapshot: what it fetched once it does not fetch again. Calls
    are kept as raw rows and name -> ref hid maps; ``Call`` objects are built
    only for the calls a table shows, since frames hold a million calls.
    """

    def __init__(self, reader: CallReader) -> None:
        self.reader = reader
        self.cids: dict[str, str] = {}  # ref hid -> cid, for every ref on a fetched call
        self._rows: dict[str, tuple[Any, ...]] = {}
        self._sides: dict[str, tuple[dict[str, str], dict[str, str]]] = {}  # (inputs, outputs)
        self._creator: dict[str, tuple[str, str]] = {}  # output ref hid -> (call hid, output name)
        self._ref_edges: dict[str, dict[str, list[tuple[str, str]]]] = {IN: {}, OUT: {}}
        self._calls: dict[str, Call] = {}

    def fetch(self, call_hids: Iterable[str]) -> list[str]:
        """Fetch the calls not fetched yet in one batch; returns the hids that are stored."""
        wanted = call_hids if isinstance(call_hids, (set, frozenset, dict)) else set(call_hids)
        rows = self._rows
        missing = [hid for hid in wanted if hid not in rows]
        if missing:
            records = self.reader.call_records(missing)
            sides = self._sides
            for row in records.calls:
                rows[row[0]] = row
                sides[row[0]] = ({}, {})
            cids, creator = self.cids, self._creator
            for call_hid, direction, name, ref_hid, ref_cid in records.edges:
                cids[ref_hid] = ref_cid
                if direction == IN:
                    sides[call_hid][0][name] = ref_hid
                else:
                    sides[call_hid][1][name] = ref_hid
                    creator[ref_hid] = (call_hid, name)
        return [hid for hid in wanted if hid in rows]

    def cids_of(self, ref_hids: Iterable[str]) -> dict[str, str]:
        """ref hid -> cid for every ref seen so far, after asking the store for these if unseen."""
        missing = [h for h in ref_hids if h not in self.cids]
        if missing:
            self.cids.update(self.reader.ref_cids(missing))
        return self.cids

    def op_of(self, call_hid: str) -> str:
        """The op name of a fetched call."""
        return str(self._rows[call_hid][2])

    def side(self, call_hid: str, direction: str) -> dict[str, str]:
        """Edge name -> ref hid on one side of a fetched call."""
        return self._sides[call_hid][0 if direction == IN else 1]

    def calls(self, call_hids: Iterable[str]) -> dict[str, Call]:
        """hid -> Call for these hids (fetched if needed), each built once."""
        wanted = set(call_hids)
        self.fetch(wanted)
        built, cids = self._calls, self.cids
        for hid in wanted - built.keys():
            row = self._rows.get(hid)
            if row is not None:
                inputs, outputs = self._sides[hid]
                built[hid] = Call.from_row(row, {n: Ref(cids[h], h) for n, h in inputs.items()},
                                           {n: Ref(cids[h], h) for n, h in outputs.items()})
        return {hid: built[hid] for hid in wanted if hid in built}

    def ref_edges(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str]]:
        """``(call hid, edge name)`` of the stored edges that consumed (IN) or produced (OUT) these refs.

        Each ref is asked about once per direction; a ref made by a fetched
        call names its creator without asking.
        """
        known = self._ref_edges[direction]
        creator = self._creator if direction == OUT else {}
        missing = [h for h in ref_hids if h not in known and h not in creator]
        if missing:
            for hid in missing:
                known[hid] = []
            for call_hid, name, ref_hid in self.reader.ref_edge_rows(missing, direction):
                known[ref_hid].append((call_hid, name))
        found: list[tuple[str, str]] = []
        for hid in ref_hids:
            made_by = creator.get(hid)
            if made_by is not None:
                found.append(made_by)
            else:
                found.extend(known[hid])
        return found


def add_calls(graph: FrameGraph, index: CallIndex, node: str, op_name: str, call_hids: list[str],
              new_edges: dict[str, set[str] | None]) -> FrameGraph:
    """Put fetched calls in op node ``node`` (created if new), filling its variables.

    ``new_edges`` says, per direction, which edge names without an edge yet
    get a new variable: a set of names, or None for all of them. Refs on
    existing edges join those edges' variables.
    """
    var_refs: dict[str, set[str]] = defaultdict(set)
    for direction in (IN, OUT):
        by_name: dict[str, list[str]] = defaultdict(list)
        for hid in call_hids:
            for name, ref_hid in index.side(hid, direction).items():
                by_name[name].append(ref_hid)
        allowed = new_edges.get(direction, set())
        for name in sorted(by_name):
            edge = graph.edge(node, direction, name)
            if edge is None:
                if allowed is not None and name not in allowed:
                    continue
                var = _var_holding(graph, node, direction, set(by_name[name]))
                if var is None:
                    var = graph.fresh_name(name) if direction == IN else graph.output_var_name(name)
                edge = FrameEdge(node, direction, name, var)
                graph = graph.with_nodes(vars={var: ()}, edges=[edge])
            var_refs[edge.var].update(by_name[name])
    return graph.with_nodes(vars=var_refs, ops={node: call_hids}, op_names={node: op_name})


def _var_holding(graph: FrameGraph, node: str, direction: str, refs: set[str]) -> str | None:
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


def frame_of_calls(index: CallIndex, call_hids: Iterable[str]) -> FrameGraph:
    """One op node per op holding these calls, with every input and output."""
    graph = FrameGraph.empty()
    by_op: dict[str, list[str]] = defaultdict(list)
    for hid in index.fetch(call_hids):
        by_op[index.op_of(hid)].append(hid)
    for op_name in sorted(by_op):
        node = graph.fresh_name(op_name)
        graph = add_calls(graph, index, node, op_name, by_op[op_name], {IN: None, OUT: None})
    return graph


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
    # Calls already shown on an edge of this direction and name are skipped.
    shown: dict[str, list[frozenset[str]]] = defaultdict(list)
    for edge in graph.edges:
        if edge.direction == direction:
            shown[edge.name].append(graph.ops[edge.op_node])
    found: dict[str, set[str]] = defaultdict(set)  # call hid -> edge names
    for call_hid, name in index.ref_edges(graph.vars[var], direction):
        if not any(call_hid in hids for hids in shown.get(name, ())):
            found[call_hid].add(name)
    if not found:
        return graph
    by_op: dict[str, list[str]] = defaultdict(list)
    for hid in sorted(index.fetch(found)):
        by_op[index.op_of(hid)].append(hid)
    for op_name in sorted(by_op):
        group = by_op[op_name]
        names = set().union(*(found[hid] for hid in group))
        node = _node_for(graph, op_name, var, direction, names)
        graph = graph.with_nodes(edges=[FrameEdge(node, direction, n, var) for n in sorted(names)
                                        if graph.edge(node, direction, n) is None])
        other = OUT if direction == IN else IN
        graph = add_calls(graph, index, node, op_name, group, {direction: set(), other: None})
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
