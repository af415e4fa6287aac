"""Which nodes of two frames' graphs are the same node, and the ``| & -`` of two graphs built on it.

Names in a frame are made up (``var_0`` is the first output met, whichever op
made it), so two frames' nodes are one node only when the graphs say so:

- an op node is the same when it has the same name and holds calls of the
  same op;
- a variable is the same when it sits on the same edge (argument or output of
  that name) of an op node that is the same, whatever its name in each frame
  (the left frame's name is kept);
- a variable with no edges in either frame (a group of Refs, as from
  ``storage.cf({"model": refs})`` or ``storage.cf(refs)``) is the same as the
  other frame's edgeless variable of that name.

Any other node of the right frame is its own node: it keeps its name, or gets
a fresh one if the left frame uses that name. A right variable on edges of
two different left variables raises ``FrameArgumentError``.
"""

from __future__ import annotations

import re
from collections import defaultdict

from memostore.cf.graph import FrameEdge, FrameGraph
from memostore.cf.hidset import HidSet
from memostore.errors import FrameArgumentError

_DEFAULT_VAR = re.compile(r"var_\d+")


def same_nodes(left: FrameGraph, right: FrameGraph) -> dict[str, str]:
    """Right node -> the left node it is, for the right nodes that are a left node (module docstring)."""
    same = {node: node for node, op in right.op_names.items() if left.op_names.get(node) == op}
    found: dict[str, set[str]] = defaultdict(set)
    for edge in right.edges:
        theirs = left.edge(edge.op_node, edge.direction, edge.name) if edge.op_node in same else None
        if theirs is not None:
            found[edge.var].add(theirs.var)
    for var, targets in sorted(found.items()):
        if len(targets) > 1:
            shown = " and ".join(repr(t) for t in sorted(targets))
            raise FrameArgumentError(
                f"cannot combine frames: variable {var!r} of the right frame is on edges of {shown} in the "
                f"left one, which are two variables there; join them first (left.merge_vars(), or "
                f"left.rename(...) and select_nodes) or drop one of those edges from the right frame")
        same[var] = targets.pop()
    for var in right.vars:
        if var not in same and var in left.vars and not right.edges_of(var) and not left.edges_of(var):
            same[var] = var
    return same


def union(left: FrameGraph, right: FrameGraph) -> FrameGraph:
    """Both graphs' nodes and edges, the same nodes made one, each holding the hids of both."""
    same = same_nodes(left, right)
    name = _names(left, right, same)
    vars = dict(left.vars)
    for node, hids in right.vars.items():
        vars[name[node]] = vars.get(name[node], HidSet()) | hids
    ops = dict(left.ops)
    for node, hids in right.ops.items():
        ops[name[node]] = ops.get(name[node], HidSet()) | hids
    op_names = {**left.op_names, **{name[node]: op for node, op in right.op_names.items()}}
    edges = left.edges | {FrameEdge(name[e.op_node], e.direction, e.name, name[e.var]) for e in right.edges}
    merged = FrameGraph(vars, ops, op_names, edges)
    if merged.cycle_through():
        raise FrameArgumentError("cannot combine frames: their graphs joined make a cycle (a value leading "
                                 "back to itself); combine smaller parts (select_nodes) of one of them")
    return merged


def intersection(left: FrameGraph, right: FrameGraph) -> FrameGraph:
    """The left graph's nodes and edges that are also the right graph's, holding the hids in both."""
    same = same_nodes(left, right)
    vars: dict[str, HidSet] = {}
    ops: dict[str, HidSet] = {}
    for node, mine in same.items():
        if node in right.vars:
            vars[mine] = vars.get(mine, HidSet()) | (left.vars[mine] & right.vars[node])
        else:
            ops[mine] = ops.get(mine, HidSet()) | (left.ops[mine] & right.ops[node])
    shared = {FrameEdge(same[e.op_node], e.direction, e.name, same[e.var])
              for e in right.edges if e.op_node in same and e.var in same}
    return FrameGraph(vars, ops, {n: left.op_names[n] for n in ops}, left.edges & frozenset(shared))


def without(left: FrameGraph, right: FrameGraph) -> tuple[dict[str, HidSet], dict[str, HidSet]]:
    """(vars, ops) of the left graph, each node without the hids of the right nodes that are it."""
    taken: dict[str, HidSet] = defaultdict(HidSet)
    for node, mine in same_nodes(left, right).items():
        taken[mine] = taken[mine] | (right.vars[node] if node in right.vars else right.ops[node])
    vars = {n: h - taken[n] if n in taken else h for n, h in left.vars.items()}
    ops = {n: h - taken[n] if n in taken else h for n, h in left.ops.items()}
    return vars, ops


def _names(left: FrameGraph, right: FrameGraph, same: dict[str, str]) -> dict[str, str]:
    """Right node -> its name in the union: the left node it is, its own name, or a fresh one."""
    name = dict(same)
    own = [n for n in sorted(right.names()) if n not in same]
    taken = left.names() | set(own)
    for node in own:
        if node in left.names():
            fresh = (left.output_var_name("output_0", taken) if node in right.vars and _DEFAULT_VAR.fullmatch(node)
                     else left.fresh_name(node, taken))
            taken.add(fresh)
            name[node] = fresh
        else:
            name[node] = node
    return name
