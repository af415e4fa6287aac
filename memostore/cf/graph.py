"""The immutable graph behind a ComputationFrame.

Variables are sets of ref hids, operations are sets of call hids of one op
(``HidSet``: numpy arrays, since a frame may hold millions of them),
and labelled edges join them: ``(op node, "in", argument, variable)`` for an
input and ``(op node, "out", output, variable)`` for an output. Every change
returns a new graph, so frames derived from one another never interfere.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import re
from typing import Iterable, Mapping

from memostore.cf.hidset import HidSet

IN = "in"
OUT = "out"
_DEFAULT_OUTPUT = re.compile(r"output_\d+")


def is_default_output(name: str) -> bool:
    """Whether an output name is one memostore gave (``output_0``...), not the op's author."""
    return _DEFAULT_OUTPUT.fullmatch(name) is not None


@dataclasses.dataclass(frozen=True)
class FrameEdge:
    """An argument (``direction == "in"``) or output of an op node."""

    op_node: str
    direction: str
    name: str
    var: str


@dataclasses.dataclass(frozen=True)
class FrameGraph:
    """Variables, op nodes, and the edges between them.

    ``op_names`` maps each op node to the name of its op (two nodes may hold
    calls of the same op, e.g. ``train`` and ``train_1``).
    """

    vars: Mapping[str, HidSet]
    ops: Mapping[str, HidSet]
    op_names: Mapping[str, str]
    edges: frozenset[FrameEdge]

    @staticmethod
    def empty() -> FrameGraph:
        """A graph with nothing in it."""
        return FrameGraph({}, {}, {}, frozenset())

    def check_invariants(self) -> None:
        """Raise AssertionError if the graph is inconsistent."""
        assert set(self.ops) == set(self.op_names), "every op node has an op name"
        assert not set(self.vars) & set(self.ops), "node names are unique"
        for edge in self.edges:
            assert edge.op_node in self.ops and edge.var in self.vars, f"dangling edge {edge}"
            assert edge.direction in (IN, OUT)
        seen = set()
        for edge in self.edges:
            key = (edge.op_node, edge.direction, edge.name)
            assert key not in seen, f"two variables on {key}"
            seen.add(key)
        assert not self.cycle_through(), "the graph is acyclic"

    # --- navigation (indexes are built once per graph: a node may have 10,000 outputs) ---

    @functools.cached_property
    def _edge_index(self) -> dict[tuple[str, str, str], FrameEdge]:
        return {(e.op_node, e.direction, e.name): e for e in self.edges}

    @functools.cached_property
    def _edges_by_node(self) -> dict[str, list[FrameEdge]]:
        by_node: dict[str, list[FrameEdge]] = {}
        for e in sorted(self.edges, key=lambda e: (e.op_node, e.direction, e.name, e.var)):
            by_node.setdefault(e.op_node, []).append(e)
            if e.var != e.op_node:
                by_node.setdefault(e.var, []).append(e)
        return by_node

    def edges_of(self, node: str, direction: str | None = None) -> list[FrameEdge]:
        """Edges touching ``node`` (op or var), optionally of one direction."""
        found = self._edges_by_node.get(node, [])
        return [e for e in found if e.direction == direction] if direction is not None else list(found)

    def edge(self, op_node: str, direction: str, name: str) -> FrameEdge | None:
        """The edge of ``op_node`` with that direction and name, if any."""
        return self._edge_index.get((op_node, direction, name))

    def successors(self) -> dict[str, set[str]]:
        """Node -> the nodes its edges lead to (var -> op for inputs, op -> var for outputs)."""
        result: dict[str, set[str]] = {n: set() for n in (*self.vars, *self.ops)}
        for e in self.edges:  # an op node being built may have edges before it has calls
            if e.direction == IN:
                result.setdefault(e.var, set()).add(e.op_node)
            else:
                result.setdefault(e.op_node, set()).add(e.var)
        return result

    def reachable(self, start: str, backward: bool = False) -> set[str]:
        """The nodes a directed path leads to from ``start`` (or, ``backward``, from which one leads to it)."""
        step = self.successors()
        if backward:
            reverse: dict[str, set[str]] = {n: set() for n in step}
            for node, targets in step.items():
                for t in targets:
                    reverse.setdefault(t, set()).add(node)
            step = reverse
        stack, seen = [start], {start}
        while stack:
            for nxt in step.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def reaches(self, start: str, goal: str) -> bool:
        """Whether a directed path leads from ``start`` to ``goal``."""
        return goal in self.reachable(start)

    @functools.cached_property
    def _topological(self) -> list[str]:
        successors = self.successors()
        indegree = {n: 0 for n in successors}
        for targets in successors.values():
            for t in targets:
                indegree[t] += 1
        ready = [n for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for t in successors[node]:
                indegree[t] -= 1
                if indegree[t] == 0:
                    heapq.heappush(ready, t)
        return order

    def topological_nodes(self) -> list[str]:
        """Every node, each after every node upstream of it; ties by name."""
        return list(self._topological)

    def topological_ops(self) -> list[str]:
        """Op nodes, each after every op upstream of it; ties by name."""
        return [n for n in self._topological if n in self.ops]

    def cycle_through(self) -> bool:
        """Whether the graph has a directed cycle."""
        return len(self._topological) != len(self.successors())

    # --- building ---------------------------------------------------------

    def names(self) -> set[str]:
        """Every node name, variable or op."""
        return set(self.vars) | set(self.ops)

    def fresh_name(self, base: str, taken: set[str] | None = None) -> str:
        """``base``, or ``base_1``, ``base_2``... whichever names no node yet (nor one in ``taken``)."""
        taken = self.names() if taken is None else taken
        if base not in taken:
            return base
        index = 1
        while f"{base}_{index}" in taken:
            index += 1
        return f"{base}_{index}"

    def output_var_name(self, output_name: str, taken: set[str] | None = None) -> str:
        """The name a new variable on this output gets: named outputs keep their name."""
        taken = self.names() if taken is None else taken
        if is_default_output(output_name):
            index = 0
            while f"var_{index}" in taken:
                index += 1
            return f"var_{index}"
        return self.fresh_name(output_name, taken)

    def with_nodes(
        self,
        vars: Mapping[str, Iterable[str]] | None = None,
        ops: Mapping[str, Iterable[str]] | None = None,
        op_names: Mapping[str, str] | None = None,
        edges: Iterable[FrameEdge] = (),
    ) -> FrameGraph:
        """A copy with these hids added to (or nodes created for) the given names."""
        new_vars = dict(self.vars)
        for name, hids in (vars or {}).items():
            new_vars[name] = new_vars.get(name, HidSet()) | HidSet.of(hids)
        new_ops = dict(self.ops)
        for name, hids in (ops or {}).items():
            new_ops[name] = new_ops.get(name, HidSet()) | HidSet.of(hids)
        return FrameGraph(new_vars, new_ops, {**self.op_names, **(op_names or {})},
                          self.edges | frozenset(edges))

    def restricted(self, vars: Mapping[str, HidSet], ops: Mapping[str, HidSet]) -> FrameGraph:
        """The same nodes and edges holding only the given hids."""
        return FrameGraph(
            {name: vars.get(name, HidSet()) for name in self.vars},
            {name: ops.get(name, HidSet()) for name in self.ops},
            self.op_names,
            self.edges,
        )

    def renamed(self, mapping: Mapping[str, str]) -> FrameGraph:
        """Variables and op nodes renamed by ``mapping`` (old -> new)."""
        def new(name: str) -> str:
            return mapping.get(name, name)

        return FrameGraph(
            {new(n): hids for n, hids in self.vars.items()},
            {new(n): hids for n, hids in self.ops.items()},
            {new(n): op for n, op in self.op_names.items()},
            frozenset(FrameEdge(new(e.op_node), e.direction, e.name, new(e.var)) for e in self.edges),
        )

    def selected(self, nodes: Iterable[str]) -> FrameGraph:
        """The graph induced on these nodes: them, and the edges between two of them."""
        keep = set(nodes)
        return FrameGraph(
            {name: hids for name, hids in self.vars.items() if name in keep},
            {name: hids for name, hids in self.ops.items() if name in keep},
            {name: op for name, op in self.op_names.items() if name in keep},
            frozenset(e for e in self.edges if e.op_node in keep and e.var in keep),
        )

    def can_merge(self, keep: str, drop: str) -> bool:
        """Whether variables ``keep`` and ``drop`` can be one: the result is acyclic, and no op node
        reads (or makes) both, which would put two of its edges on one column."""
        sides = {(e.op_node, e.direction) for e in self.edges_of(keep)}
        if sides & {(e.op_node, e.direction) for e in self.edges_of(drop)}:
            return False
        return not (self.reaches(keep, drop) or self.reaches(drop, keep))

    def merged(self, keep: str, drop: str) -> FrameGraph:
        """Variable ``drop``'s refs and edges moved to ``keep`` (check ``can_merge`` first)."""
        edges = frozenset(FrameEdge(e.op_node, e.direction, e.name, keep if e.var == drop else e.var)
                          for e in self.edges)
        vars = {name: refs for name, refs in self.vars.items() if name != drop}
        vars[keep] = self.vars[keep] | self.vars[drop]
        return FrameGraph(vars, self.ops, self.op_names, edges)
