"""Editing a frame's graph: selecting, dropping and merging nodes, and following computations.

Every method returns a new frame (``inplace=True`` rebinds this one, as in
mandala) and leaves the store alone: a frame is a view of stored calls.

>>> from memostore import Storage, op
>>> @op
... def double_it(x):
...     return 2 * x
>>> @op
... def add_up(a, b):
...     return a + b
>>> storage = Storage()
>>> with storage:
...     total = add_up(double_it(1), double_it(2))
>>> cf = storage.cf(add_up).expand_back(recursive=True)
>>> print(cf.upstream("a"))
ComputationFrame with:
    2 variable(s) (2 unique refs)
    1 operation(s) (1 unique calls)
Computational graph:
    a@output_0 = double_it(x=x)
>>> cf.downstream("x").df(include_calls=False)
   x  a  var_0
0  1  2      6
>>> sorted(cf.select_nodes(["a", "add_up", "var_0"]).drop_var("a").vars)
['var_0']
"""

from __future__ import annotations

import re

import numpy as np

from memostore.cf.base import F, FrameBase
from memostore.cf.columns import CallIndex
from memostore.cf.graph import FrameGraph
from memostore.cf.reach import How, on_paths, reach, restricted, source_elements
from memostore.cf.table import key_table
from memostore.errors import FrameArgumentError
from memostore.gcpause import without_gc

_DEFAULT_VAR = re.compile(r"var_\d+")


class Editing(FrameBase):
    """Graph edits of a ComputationFrame (mixed into it; see ``memostore.cf.frame``)."""

    def select_nodes(self: F, names: str | list[str] | set[str], inplace: bool = False) -> F:
        """The frame on these nodes alone: them, with all their refs and calls, and the edges between them.

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> picked = cf.select_nodes(["a", "add_up", "var_0"])
        >>> sorted(picked.vars), sorted(picked.ops)
        (['a', 'var_0'], ['add_up'])
        """
        return self._new(self._graph.selected(self._node_names(names)), inplace)

    def drop_var(self: F, name: str, inplace: bool = False) -> F:
        """The frame without this variable and its edges (its ops keep their calls).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> sorted(cf.drop_var("a").vars)
        ['b', 'var_0', 'x', 'x_1']
        """
        self._var_names([name])
        return self._new(self._graph.selected(self._graph.names() - {name}), inplace)

    def drop_op(self: F, name: str, inplace: bool = False) -> F:
        """The frame without this op node, its calls and its edges (its variables keep their refs).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> sorted(cf.drop_op("add_up").ops), len(cf.drop_op("add_up").vars)
        (['double_it', 'double_it_1'], 5)
        """
        if name not in self._graph.ops:
            self._node_names([name])
            raise FrameArgumentError(f"drop_op: {name!r} is a variable, not an op node; use drop_var({name!r})")
        return self._new(self._graph.selected(self._graph.names() - {name}), inplace)

    @without_gc
    def upstream(self: F, *nodes: str, how: How = "weak") -> F:
        """The computations that led to what these nodes hold: the nodes a path leads from to one of
        them, holding the refs and calls those values came from.

        A call that made a value reached is kept (``how="weak"``), even when
        another of its outputs leads elsewhere. ``how="strong"`` (mandala's
        default) keeps it only when all its outputs in the frame are reached.

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> sorted(cf.upstream("a").vars), sorted(cf.upstream("a").ops)
        (['a', 'x'], ['double_it'])
        """
        names = _checked(self, nodes, how, "upstream")
        graph = self._graph.selected(set().union(*(self._graph.reachable(n, backward=True) for n in names)))
        start = {n: _keys_of(graph, n) for n in names}
        return self._new(restricted(graph, reach(graph, self._index, start, "back", how)))

    @without_gc
    def downstream(self: F, *nodes: str, how: How = "strong") -> F:
        """The computations that followed from what these nodes hold: the nodes a path leads to from
        one of them, holding the refs and calls computed from those values.

        ``how="strong"`` (as in mandala) keeps a call only when all its inputs
        on those paths are reached, which leaves out what also used values
        from elsewhere; ``"weak"`` keeps it when any is.

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> cf.downstream("x").df(include_calls=False)
           x  a  var_0
        0  1  2      6
        """
        names = _checked(self, nodes, how, "downstream")
        graph = self._graph.selected(set().union(*(self._graph.reachable(n) for n in names)))
        start = {n: _keys_of(graph, n) for n in names}
        return self._new(restricted(graph, reach(graph, self._index, start, "forward", how)))

    @without_gc
    def midstream(self: F, *nodes: str, how: How = "strong") -> F:
        """The part of the frame between these nodes: the nodes on a path from one of them to another,
        holding the computations that start at them (their refs or calls with no producer there).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> cf.midstream("a", "var_0").df(include_calls=False)
           a  var_0
        0  2      6
        """
        names = _checked(self, nodes, how, "midstream")
        graph = self._graph.selected(on_paths(self._graph, names))
        start = source_elements(graph, self._index, names)
        return self._new(restricted(graph, reach(graph, self._index, start, "forward", how)))

    @without_gc
    def merge_vars(self: F, inplace: bool = False) -> F:
        """Join variables that share refs into one, wherever the frame stays a frame.

        Two variables that hold some of the same values made by calls
        (``var_0``, the output of ``train`` in one frame, and ``model``, the
        input of ``evaluate`` in another, after ``|``) become one, named after
        the one that is not a ``var_N``. They stay apart when joining them
        would close a cycle (a loop's input and output), put two edges of one
        op node on one column, or when some computation shows a different value
        in each. Values passed by hand do not join variables: ``seed=0`` of one
        op and ``fold=0`` of another share a ref only by their content.

        >>> from memostore import Storage, op
        >>> @op
        ... def train(n): return n * 10
        >>> @op
        ... def evaluate(model): return model + 1
        >>> with Storage() as storage:
        ...     _ = evaluate(train(3))
        >>> cf = storage.cf(train) | storage.cf(evaluate).rename({"var_0": "score"})
        >>> sorted(cf.vars), sorted(cf.merge_vars().vars)
        (['model', 'n', 'score', 'var_0'], ['model', 'n', 'score'])
        >>> cf.merge_vars().df(include_calls=False)
           n  model  score
        0  3     30     31
        """
        graph = self._graph
        done: set[tuple[str, str]] = set()
        while True:
            pair = _next_pair(graph, self._index, done)
            if pair is None:
                return self._new(graph, inplace)
            done.add(pair)
            keep, drop = sorted(pair, key=lambda n: (_DEFAULT_VAR.fullmatch(n) is not None, n))
            if graph.can_merge(keep, drop) and _agree(graph, self._index, keep, drop):
                graph = graph.merged(keep, drop)
                done = set()  # a join changes what others can join


def _checked(frame: FrameBase, nodes: tuple[str, ...], how: str, method: str) -> list[str]:
    if how not in ("strong", "weak"):
        raise FrameArgumentError(f"{method} takes how='strong' or how='weak', got how={how!r}")
    if not nodes:
        raise FrameArgumentError(f"{method} needs at least one node name, e.g. cf.{method}('model')")
    return frame._node_names(list(nodes))


def _keys_of(graph: FrameGraph, node: str) -> np.ndarray:
    hids = graph.vars[node] if node in graph.vars else graph.ops[node]
    return hids.keys


def _next_pair(graph: FrameGraph, index: CallIndex, done: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The first pair of variables (in name order) sharing refs made by calls, not tried yet."""
    names = sorted(graph.vars)
    for position, first in enumerate(names):
        for second in names[position + 1:]:
            if (first, second) in done:
                continue
            shared = graph.vars[first] & graph.vars[second]
            if shared and not index.passed_by_hand(shared).all():
                return first, second
    return None


def _agree(graph: FrameGraph, index: CallIndex, keep: str, drop: str) -> bool:
    """Whether no row of the table shows a value in both variables, and different ones."""
    keys = key_table(graph, index, "outer")
    (mine, mine_present), (theirs, theirs_present) = keys[keep], keys[drop]
    return not bool((mine_present & theirs_present & (mine != theirs)).any())
