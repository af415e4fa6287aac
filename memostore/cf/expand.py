"""Growing a FrameGraph along the stored edges, one batched query per step.

Expanding a variable back adds the calls that produced its refs; expanding
it forward adds the calls that consumed them. Calls of one op join an
existing node of that op when that keeps the graph acyclic and each edge
name on one variable; otherwise they get a node of their own (``inc_1``).

Each (call, direction, edge name) appears on at most one edge: a produced or
consumed ref whose call edge is already shown is not expanded again. That is
what stops loops (``x = inc(x)`` ten times shows as one ``inc`` node) and
keeps a full expansion linear in the number of stored calls.

Values passed to ops by hand have a hid made from their content alone, so
``seed=0`` of one op and ``fold=0`` of another share a ref. A frame keeps
them apart: such values are a variable per op node and parameter, never
joined to another variable and never followed forward to other consumers
(except from a variable made from a lone Ref, which asks exactly that).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

import numpy as np

from memostore.cf.columns import CallIndex
from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph, is_default_output
from memostore.cf.hidset import HidSet, code_order, member, runs_of, stable_order, unique_keys

ALL: None = None  # ``new_edges`` value: every edge name of that direction


def add_calls(graph: FrameGraph, index: CallIndex, node: str, op_name: str, call_keys: np.ndarray,
              new_edges: dict[str, set[str] | None], refill: bool = True,
              fresh: Iterable[FrameEdge] = ()) -> FrameGraph:
    """Put fetched calls (sorted keys) in op node ``node`` (created if new), filling its variables.

    ``new_edges`` says, per direction, which edge names without an edge yet
    get one: a set of names, or None for all of them. A new edge joins an
    existing variable holding refs made by calls that it holds too (so a
    value shown as one op's output and another's input is one column), else
    gets a variable of its own. Refs on existing edges join those edges' variables
    (unless not ``refill``: the calls are in the node already). The calls the
    node held before fill its new edges (and the ``fresh`` ones, just added)
    too: a frame never shows a call without the values on its edges.
    """
    rows = index.edge_rows(call_keys)
    placer = _Placer(graph, index, node)
    new: list[FrameEdge] = []
    var_refs: dict[str, list[HidSet]] = defaultdict(list)
    for direction in (IN, OUT):  # inputs first: the cycle check of new outputs needs them
        allowed = new_edges.get(direction, set())
        for name, refs in _refs_by_name(index, rows, direction):
            edge = graph.edge(node, direction, name)
            if edge is not None and not refill:
                continue
            if edge is None:
                if allowed is not None and name not in allowed:
                    continue
                edge = FrameEdge(node, direction, name, placer.var_for(direction, name, refs))
                new.append(edge)
            var_refs[edge.var].append(refs)
    _fill_from_earlier(graph, index, node, call_keys, [*new, *fresh], var_refs)
    merged = {var: _union(parts) for var, parts in var_refs.items()}
    graph = graph.with_nodes(vars=merged, ops={node: index.call_set(call_keys)}, op_names={node: op_name},
                             edges=new)
    for keep, drop in placer.merges:
        graph = _merge_vars(graph, keep, drop)
    return graph


def with_edge_refs(graph: FrameGraph, index: CallIndex) -> FrameGraph:
    """The graph with the values on the edges of every call it holds added to the edges' variables:
    a frame never shows a call without them (``a - b`` keeps a value both share if a call of ``a``
    left uses it; ``a | b`` gives ``b``'s calls the values on ``a``'s edges of their node)."""
    added: dict[str, list[HidSet]] = defaultdict(list)
    for node, calls in graph.ops.items():
        rows = index.edge_rows(index.fetch(calls))
        for direction in (IN, OUT):
            for name, refs in _refs_by_name(index, rows, direction):
                edge = graph.edge(node, direction, name)
                if edge is not None:
                    added[edge.var].append(refs)
    return graph.with_nodes(vars={var: _union(parts) for var, parts in added.items()})


def _fill_from_earlier(graph: FrameGraph, index: CallIndex, node: str, call_keys: np.ndarray,
                       edges: list[FrameEdge], var_refs: dict[str, list[HidSet]]) -> None:
    """Add to ``var_refs`` the refs that the node's earlier calls (not among ``call_keys``) have on
    these new edges: an edge added for later calls (``output_0`` of ``two_a``, found from its first
    output's readers after its second output's) must show every call's value."""
    earlier = graph.ops.get(node)
    if not edges or earlier is None or not len(earlier):
        return
    others = earlier.keys[~member(earlier.keys, call_keys)]
    if not others.size:
        return
    rows = index.edge_rows(others)
    wanted = {(e.direction, e.name): e.var for e in edges}
    for direction in (IN, OUT):
        for name, refs in _refs_by_name(index, rows, direction):
            if (direction, name) in wanted:
                var_refs[wanted[direction, name]].append(refs)


def _merge_vars(graph: FrameGraph, keep: str, drop: str) -> FrameGraph:
    """``drop``'s refs and edges moved to ``keep``: two variables showing refs one input reads.

    (``smooth_b``'s outputs, shown before ``final`` was, and ``smooth_a``'s,
    which ``final`` reads too.) Kept apart when that would put two edges of
    one op node and direction on one variable, or close a cycle.
    """
    if keep not in graph.vars or drop not in graph.vars or not graph.can_merge(keep, drop):
        return graph
    return graph.merged(keep, drop)


def _refs_by_name(index: CallIndex, rows: np.ndarray, direction: str) -> Iterator[tuple[str, HidSet]]:
    """(edge name, refs on it) for the edges of one direction among these edge rows, by name."""
    side = rows[index.e_out[rows] == (direction == OUT)]
    codes = index.e_name[side]
    order = code_order(codes)
    side, codes = side[order], codes[order]
    starts = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]])) if codes.size else codes
    bounds = np.append(starts, codes.size)
    groups = [(index.names.names[codes[a]], side[a:b]) 
              for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    for name, on_edge in sorted(groups, key=lambda g: g[0]):
        yield name, index.ref_set(on_edge)


def _union(parts: list[HidSet]) -> HidSet:
    if len(parts) == 1:
        return parts[0]
    return HidSet.from_arrays(np.concatenate([p.raw for p in parts]), np.concatenate([p.keys for p in parts]))


class _Placer:
    """Chooses the variable of each new edge of one op node.

    An edge joins an existing variable that shares refs made by calls with it
    (without it, ``train`` found as a consumer of ``X`` would put its outputs
    in a new variable although they are shown already as ``model``, the input
    of ``evaluate``, and each computation would be split over two rows), as
    long as that keeps the graph acyclic and the node's edges on distinct
    variables. Values passed by hand never join: see the module docstring.
    """

    def __init__(self, graph: FrameGraph, index: CallIndex, node: str) -> None:
        self.graph, self.index, self.node = graph, index, node
        self.taken = graph.names() | {node}
        self.next_var = 0
        self.var_names = sorted(graph.vars)
        keys = [graph.vars[name].keys for name in self.var_names]
        all_keys = np.concatenate(keys) if keys else np.empty(0, dtype=np.uint64)
        owners = np.repeat(np.arange(len(keys)), [k.size for k in keys])
        order = stable_order(all_keys)
        self.sorted_keys, self.owners = all_keys[order], owners[order]
        self.merges: list[tuple[str, str]] = []  # (variable kept, variable showing more of its refs)
        self.used = {e.var for e in graph.edges_of(node)}  # a node being built may have edges already
        self.upstream = graph.reachable(node, backward=True)
        self.downstream = graph.reachable(node)

    def var_for(self, direction: str, name: str, refs: HidSet) -> str:
        """The variable a new edge named ``name`` holding ``refs`` goes to."""
        var = self._existing(direction, refs)
        if var is None:
            var = self._new_name(direction, name)
        self.used.add(var)
        if direction == IN and var in self.graph.vars:  # the node is now downstream of var and its past
            self.upstream |= self.graph.reachable(var, backward=True)
        return var

    def _existing(self, direction: str, refs: HidSet) -> str | None:
        if not self.sorted_keys.size:
            return None
        found = runs_of(self.sorted_keys, refs.keys)
        if not found.size:
            return None
        if direction == IN:  # only refs made by calls connect: a constant given by hand does not
            shared = unique_keys(self.sorted_keys[found])
            shared_refs = refs.restricted_to(shared)
            made = shared_refs.keys[~self.index.passed_by_hand(shared_refs)]
            found = runs_of(self.sorted_keys, made)
        fits = []
        for owner in unique_keys(self.owners[found]).tolist():  # in name order
            var: str = self.var_names[owner]
            cycle = var in self.upstream if direction == OUT else var in self.downstream
            if var not in self.used and not cycle:
                fits.append(var)
        self.merges.extend((fits[0], other) for other in fits[1:])
        return fits[0] if fits else None

    def _new_name(self, direction: str, name: str) -> str:
        if direction == OUT and is_default_output(name):
            while f"var_{self.next_var}" in self.taken:
                self.next_var += 1
            var = f"var_{self.next_var}"
        else:
            var = self.graph.fresh_name(name, self.taken)
        self.taken.add(var)
        return var


def frame_of_calls(index: CallIndex, keys: np.ndarray, graph: FrameGraph | None = None) -> FrameGraph:
    """One op node per op holding these fetched calls (sorted keys), with every input and output."""
    graph = FrameGraph.empty() if graph is None else graph
    ops = index.op_codes(keys)
    for code in sorted(unique_keys(ops).tolist(), key=lambda c: index.ops.names[c]):
        op_name = index.ops.names[code]
        node = graph.fresh_name(op_name)
        graph = add_calls(graph, index, node, op_name, keys[ops == code], {IN: ALL, OUT: ALL})
    return graph


def expand(graph: FrameGraph, index: CallIndex, varnames: Iterable[str],
           directions: tuple[str, ...], recursive: bool, all_edges: bool = False) -> FrameGraph:
    """Expand the given variables back (``OUT`` edges) and/or forward (``IN``).

    As in mandala, a step adds the edges on the expanded side and the far side
    of the new calls: expanding ``model`` forward adds ``evaluate(model=...)``
    and its outputs, not its other inputs. With ``all_edges`` it adds every
    edge of the new calls (the other inputs, the sibling outputs). Each step
    asks the store once for all the variables it expands.
    """
    pending = sorted(set(varnames))
    while pending:
        before = graph
        for direction in directions:
            pending = [n for n in pending if n in graph.vars]
            graph = _expand_step(graph, index, pending, direction, all_edges)
        if not recursive:
            break
        pending = [n for n in sorted(graph.vars) if _changed(graph, before, n)]
    return graph


def expand_all(graph: FrameGraph, index: CallIndex) -> FrameGraph:
    """Expand every variable back and forward, then give every call all its inputs and outputs, until
    nothing changes.

    Filling edges only once the calls are in lets a sibling output join the
    variable of the input that reads it (``X_test`` of ``evaluate``), consumers
    being filled before producers.
    """
    pending = sorted(graph.vars)
    while pending:
        graph = expand(graph, index, pending, (OUT, IN), True)
        before = graph
        for node in reversed(graph.topological_ops()):
            shown = {(e.direction, e.name) for e in graph.edges_of(node)}
            rows = index.edge_rows(graph.ops[node].keys)
            codes = np.flatnonzero(np.bincount(index.e_name[rows].astype(np.int64) * 2 + index.e_out[rows])).tolist()
            names = {(OUT if code % 2 else IN, index.names.names[code // 2]) for code in codes}
            if names - shown:
                graph = add_calls(graph, index, node, graph.op_names[node], graph.ops[node].keys,
                                  {IN: ALL, OUT: ALL}, refill=False)
        pending = [n for n in sorted(graph.vars) if _changed(graph, before, n)]
    return graph


def _changed(graph: FrameGraph, before: FrameGraph, var: str) -> bool:
    old = before.vars.get(var)
    return old is None or (graph.vars[var] is not old and graph.vars[var] != old)


def _expand_step(graph: FrameGraph, index: CallIndex, varnames: list[str], direction: str,
                 all_edges: bool) -> FrameGraph:
    """Add the calls that produced (``OUT``) or consumed (``IN``) these variables' refs.

    A call edge on a ref that several of them hold goes to the first.
    """
    refs = _union([graph.vars[v] for v in varnames]) if varnames else HidSet()
    calls, names, ref_keys = index.ref_edges(refs, direction)
    shown = _shown(graph, index, direction, calls, names)
    calls, names, ref_keys = calls[~shown], names[~shown], ref_keys[~shown]
    owners = _first_holder(graph, varnames, ref_keys)
    if direction == IN and calls.size:
        # A variable that is an op's parameter: its values passed by hand belong to that op alone.
        params = np.array([bool(graph.edges_of(v, IN)) for v in varnames] + [False])
        asked = params[owners]
        if asked.any():
            found = HidSet.from_arrays(*_raw_of(refs, ref_keys[asked]))
            by_hand = member(ref_keys, found.keys[index.passed_by_hand(found)])
            keep = ~(asked & by_hand)
            calls, names, owners = calls[keep], names[keep], owners[keep]
    start = graph
    for position, var in enumerate(varnames):
        if var not in graph.vars:  # merged into another variable by an earlier one's calls
            var = next(n for n in sorted(graph.vars) if start.vars[var] <= graph.vars[n])
        group = np.flatnonzero(owners == position)
        if group.size and graph is not start:  # an earlier variable's calls may have shown some
            group = group[~_shown(graph, index, direction, calls[group], names[group])]
        if group.size:
            graph = _add_found(graph, index, var, direction, calls[group], names[group], all_edges)
    return graph


def _add_found(graph: FrameGraph, index: CallIndex, var: str, direction: str, calls: np.ndarray,
               names: np.ndarray, all_edges: bool) -> FrameGraph:
    """Put calls found on ``var``'s edges (named ``names``) in nodes of their ops."""
    other = OUT if direction == IN else IN
    ops = index.op_codes(calls)
    for code in sorted(unique_keys(ops).tolist(), key=lambda c: index.ops.names[c]):
        op_name = index.ops.names[code]
        of_op = ops == code
        edge_names = {index.names.names[c] for c in unique_keys(names[of_op]).tolist()}
        node = _node_for(graph, op_name, var, direction, edge_names)
        added = [FrameEdge(node, direction, n, var) for n in sorted(edge_names)
                 if graph.edge(node, direction, n) is None]
        keys = unique_keys(calls[of_op])
        refill = bool(added) and node in graph.ops
        if refill:
            # The node's other calls have refs on a new edge too (the node was found through another
            # of its edges): they join ``var``, or a row would show a ref that no variable holds.
            keys = unique_keys(np.concatenate([keys, index.fetch(graph.ops[node])]))
        graph = graph.with_nodes(edges=added)
        new_edges: dict[str, set[str] | None] = {direction: ALL if all_edges else set(), other: ALL}
        graph = add_calls(graph, index, node, op_name, keys, new_edges)
        if refill:
            graph = _join_sharing(graph, index, var)
    return graph


def _join_sharing(graph: FrameGraph, index: CallIndex, var: str) -> FrameGraph:
    """Merge into ``var`` the variables that show refs made by calls which ``var`` holds too
    (as ``_Placer`` does for a new edge; values passed by hand never join)."""
    refs = graph.vars[var]
    made = refs.keys[~index.passed_by_hand(refs)]
    for other in sorted(graph.vars):
        if other != var and var in graph.vars and other in graph.vars and member(graph.vars[other].keys, made).any():
            graph = _merge_vars(graph, var, other)
    return graph


def _first_holder(graph: FrameGraph, varnames: list[str], ref_keys: np.ndarray) -> np.ndarray:
    """For each ref key, the position in ``varnames`` of the first variable holding it (every ref
    key is held: it was asked for)."""
    if len(varnames) == 1 or not ref_keys.size:
        return np.zeros(ref_keys.size, dtype=np.intp)
    order = np.argsort(ref_keys)  # once: each variable's search then goes through them in order
    needles = ref_keys[order]
    first = np.zeros(ref_keys.size, dtype=np.intp)
    for position in reversed(range(len(varnames))):  # the first holder is written last
        first[member(needles, graph.vars[varnames[position]].keys)] = position
    owners = np.empty(ref_keys.size, dtype=np.intp)
    owners[order] = first
    return owners


def _raw_of(refs: HidSet, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique = unique_keys(keys)
    return refs.raw_of(unique), unique


def _shown(graph: FrameGraph, index: CallIndex, direction: str, calls: np.ndarray,
           names: np.ndarray) -> np.ndarray:
    """Which (call, edge name) pairs are on an edge of this direction already."""
    codes_of: dict[str, list[int]] = defaultdict(list)
    for edge in graph.edges:
        code = index.names.find(edge.name)
        if edge.direction == direction and code is not None:
            codes_of[edge.op_node].append(code)
    shown = np.zeros(calls.size, dtype=bool)
    for node, codes in codes_of.items():
        shown |= np.isin(names, codes) & member(calls, graph.ops[node].keys)
    return shown


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
