"""The state every ComputationFrame method works on, shared by the frame and its mixins.

A frame is its immutable graph, the reader it reads the store through, and
the index of calls fetched so far (shared by frames derived from one another).
"""

from __future__ import annotations

from typing import Iterable, TypeVar

from memostore.cf.columns import CallIndex
from memostore.cf.graph import FrameGraph
from memostore.cf.table import ValueReader
from memostore.errors import UnknownNodeError

F = TypeVar("F", bound="FrameBase")


class FrameBase:
    """A graph, a reader and an index; every change gives a new frame of the same class."""

    def __init__(self, graph: FrameGraph, reader: ValueReader, index: CallIndex | None = None) -> None:
        self._graph = graph
        self._reader = reader
        self._index = index if index is not None else CallIndex(reader)

    def _new(self: F, graph: FrameGraph, inplace: bool = False) -> F:
        graph.check_invariants()
        if inplace:
            self._graph = graph
            return self
        return type(self)(graph, self._reader, self._index)

    @property
    def vars(self) -> dict[str, set[str]]:
        """Variable name -> the hids of its refs.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> {name: len(hids) for name, hids in storage.cf(add).vars.items()}
        {'x': 2, 'y': 1, 'var_0': 2}
        """
        return {name: set(hids) for name, hids in self._graph.vars.items()}

    @property
    def ops(self) -> dict[str, set[str]]:
        """Op node name -> the hids of its calls.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = [add(double(x), 10) for x in (1, 2)]
        >>> {name: len(hids) for name, hids in storage.cf(add).expand_back().ops.items()}
        {'add': 2, 'double': 2}
        """
        return {name: set(hids) for name, hids in self._graph.ops.items()}

    @property
    def graph(self) -> FrameGraph:
        """The underlying immutable graph.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> graph = storage.cf(add).graph
        >>> graph.op_names, sorted((edge.direction, edge.name, edge.var) for edge in graph.edges)
        ({'add': 'add'}, [('in', 'x', 'x'), ('in', 'y', 'y'), ('out', 'output_0', 'var_0')])
        """
        return self._graph

    def _var_names(self, varnames: str | Iterable[str] | None) -> list[str]:
        if varnames is None:
            return sorted(self._graph.vars)
        names = [varnames] if isinstance(varnames, str) else list(varnames)
        unknown = [n for n in names if n not in self._graph.vars]
        if unknown:
            raise UnknownNodeError(f"no variable named {unknown} in this frame; variables: {sorted(self._graph.vars)}")
        return names

    def _node_names(self, names: Iterable[str]) -> list[str]:
        """These node names (variables or op nodes), checked."""
        listed = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in listed if n not in self._graph.vars and n not in self._graph.ops]
        if unknown:
            raise UnknownNodeError(f"no node named {unknown} in this frame; variables: {sorted(self._graph.vars)}, "
                                   f"ops: {sorted(self._graph.ops)}")
        return listed
