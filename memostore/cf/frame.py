"""``ComputationFrame``: a declarative view of stored calls, rendered as DataFrames.

A frame is a graph of variables (sets of refs) and operations (sets of calls
of one op); each row of ``df()`` is one computation through that graph, or
part of one. Frames are values: every method returns a new frame, and
``inplace=True`` (kept for mandala's users) only rebinds this frame's state.
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

import numpy as np

from memostore.cf.building import source_graph
from memostore.cf.columns import CallIndex
from memostore.cf.combine import intersection, union, without
from memostore.cf.editing import Editing
from memostore.cf.expand import expand, expand_all, with_edge_refs
from memostore.cf.graph import IN, OUT
from memostore.cf.hidset import RAW, HidSet
from memostore.cf.inspecting import Inspecting, ids_of
from memostore.cf.rows import KeyTable
from memostore.cf.table import (
    JoinHow,
    ValueReader,
    ValuesMode,
    cid_column,
    column_order,
    hex_column,
    key_table,
    load_columns,
    present_keys,
    render,
    unique_ids,
)
from memostore.errors import FrameArgumentError
from memostore.gcpause import without_gc
from memostore.hashing import content_id
from memostore.model import Ref

if TYPE_CHECKING:
    import graphviz
    import pandas as pd


class ComputationFrame(Editing, Inspecting):
    """Stored calls as a graph you expand, restrict, edit and turn into DataFrames.

    Make one with ``storage.cf(op)`` (or a Ref, a Call, a hid, a list of them,
    or a dict of named groups of Refs). Graph edits (``select_nodes``,
    ``upstream``, ``merge_vars``...) come from ``Editing`` and read-only views
    (``sources``, ``info``, ``refs_by_var``...) from ``Inspecting``, one
    mixin per job, so that no class grows past its budget of public methods.

    >>> from memostore import Storage, op
    >>> @op
    ... def double(x): return 2 * x
    >>> @op
    ... def add(x, y): return x + y
    >>> with Storage() as storage:
    ...     _ = [add(double(x), 10) for x in (1, 2)]
    >>> frame = storage.cf(add).expand_back(recursive=True)  # add's calls, then what made their inputs
    >>> frame.df(include_calls=False).sort_values("x_1", ignore_index=True)
       x_1  x   y  var_0
    0    1  2  10     12
    1    2  4  10     14
    """

    # --- construction -----------------------------------------------------

    @classmethod
    @without_gc
    def from_source(cls, source: Any, reader: ValueReader) -> ComputationFrame:
        """A frame from an op (or op name), a Ref, a Call, a hid, a list of them, or named groups of Refs.

        The calls of the ops and Calls given go in one op node per op, joined
        where one's output is another's input; the Refs given go in one
        variable, ``v`` (as in mandala), but those a given Call already shows;
        each group of ``{"model": [ref, ...]}`` gets a variable of that name.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = [add(double(x), 10) for x in (1, 2)]
        >>> from memostore import ComputationFrame
        >>> frame = ComputationFrame.from_source([double, add], storage.reader)  # as storage.cf([double, add])
        >>> sorted(frame.ops), sorted(frame.vars)
        (['add', 'double'], ['var_0', 'x', 'x_1', 'y'])
        """
        index = CallIndex(reader)
        graph = source_graph(source, index)
        graph.check_invariants()
        return cls(graph, reader, index)

    # --- expansion --------------------------------------------------------

    def expand_back(self, varnames: str | Iterable[str] | None = None, recursive: bool = False,
                    inplace: bool = False, all_outputs: bool = False) -> ComputationFrame:
        """Add the calls that produced these variables (all by default), with their inputs.

        ``all_outputs=True`` also adds their other outputs (the second output
        of ``train`` when ``diagnose`` used the first).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = [add(double(x), 10) for x in (1, 2)]
        >>> storage.cf(add).expand_back("x")
        ComputationFrame with:
            4 variable(s) (7 unique refs)
            2 operation(s) (4 unique calls)
        Computational graph:
            x@output_0 = double(x=x_1)
            var_0@output_0 = add(x=x, y=y)
        """
        return self._expand(varnames, (OUT,), recursive, inplace, all_outputs)

    def expand_forward(self, varnames: str | Iterable[str] | None = None, recursive: bool = False,
                       inplace: bool = False, all_inputs: bool = False) -> ComputationFrame:
        """Add the calls that consumed these variables (all by default), with their outputs.

        ``all_inputs=True`` also adds their other inputs.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = [add(double(x), 10) for x in (1, 2)]
        >>> storage.cf(double).expand_forward().df(include_calls=False).sort_values("x", ignore_index=True)
           x  var_0  var_1
        0  1      2     12
        1  2      4     14
        """
        return self._expand(varnames, (IN,), recursive, inplace, all_inputs)

    @without_gc
    def expand_all(self, inplace: bool = False) -> ComputationFrame:
        """Expand back and forward until the whole connected web of calls is in, every input and output.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x): return 2 * x
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = [add(double(x), 10) for x in (1, 2)]
        >>> frame = storage.cf(double).expand_all()
        >>> sorted(frame.ops), len(frame.vars)
        (['add', 'double'], 4)
        """
        return self._new(expand_all(self._graph, self._index), inplace)

    @without_gc
    def _expand(self, varnames: str | Iterable[str] | None, directions: tuple[str, ...], recursive: bool,
                inplace: bool, all_edges: bool) -> ComputationFrame:
        names = self._var_names(varnames)
        return self._new(expand(self._graph, self._index, names, directions, recursive, all_edges), inplace)

    # --- tables -------------------------------------------------------------

    @without_gc
    def df(self, values: ValuesMode = "objs", lazy_vars: Iterable[str] = (), join_how: JoinHow = "outer",
           include_calls: bool = True, include_versions: bool = False) -> pd.DataFrame:
        """One row per computation: values per variable, Calls per op.

        A computation ends at a call whose outputs no call of the frame reads,
        and holds every call upstream of it (see ``memostore.cf.rows``).
        ``values="refs"`` gives Refs instead of values; ``lazy_vars`` are left
        as Refs (not loaded); ``join_how="inner"`` keeps the complete ones
        (ending at a last op of the graph, each value's producer on the row);
        ``include_calls=False`` leaves out the Call columns and nothing else;
        ``include_versions`` adds an ``<op>.version`` column.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> list(storage.cf(add).df().columns)
        ['x', 'y', 'add', 'var_0']
        >>> storage.cf(add).df(include_calls=False).sort_values("x", ignore_index=True)
           x   y  var_0
        0  2  10     12
        1  4  10     14
        """
        if values not in ("objs", "refs") or join_how not in ("outer", "inner"):
            raise FrameArgumentError(f"df() takes values='objs'|'refs' and join_how='outer'|'inner', "
                             f"got values={values!r}, join_how={join_how!r}")
        # A frame over much of the store reads the values table whole: the read starts now, beside the rows.
        lazy_vars = set(lazy_vars)
        shown = sum(len(refs) for var, refs in self._graph.vars.items() if var not in lazy_vars)
        with self._reader.values_ahead(shown if self._index.complete and values == "objs" else 0):
            keys = key_table(self._graph, self._index, join_how)
            return render(self._graph, keys, self._reader, self._index, values, lazy_vars, include_calls,
                          include_versions)

    def eval(self, *varnames: str) -> pd.DataFrame:
        """The values of these variables (all by default), one row per computation.

        Only these variables' values are loaded.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> storage.cf(add).eval("var_0").sort_values("var_0", ignore_index=True)
           var_0
        0     12
        1     14
        """
        names = self._var_names(varnames or None)
        others = [v for v in self._graph.vars if v not in names]
        return self.df(include_calls=False, lazy_vars=others)[names]

    @without_gc
    def get_history_df(self, var: str, include_calls: bool = True, values: ValuesMode = "objs") -> pd.DataFrame:
        """One row per value of ``var``, with everything upstream of it: the calls that made it and
        their inputs, back to the frame's sources.

        It is ``self.upstream(var).df(...)``.

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> cf.get_history_df("a", include_calls=False)
           x  a
        0  1  2
        """
        self._var_names([var])
        return self.upstream(var).df(values=values, include_calls=include_calls)

    # --- naming -------------------------------------------------------------

    def rename(self, vars: Mapping[str, str] | None = None, inplace: bool = False) -> ComputationFrame:
        """Rename variables (``{"var_0": "model"}``).

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> sorted(storage.cf(add).rename({"var_0": "total"}).vars)
        ['total', 'x', 'y']
        """
        mapping = dict(vars or {})
        self._var_names(list(mapping))
        kept = (set(self._graph.vars) - set(mapping)) | set(self._graph.ops)
        clashes = sorted(set(mapping.values()) & kept)
        if clashes or len(set(mapping.values())) != len(mapping):
            raise FrameArgumentError(f"rename would give two nodes the name(s) {clashes or sorted(mapping.values())}")
        return self._new(self._graph.renamed(mapping), inplace)

    # --- restriction and algebra ------------------------------------------------

    @without_gc
    def where(self, varname: str, predicate: Callable[[Any], Any]) -> ComputationFrame:
        """The computations whose value of ``varname`` satisfies ``predicate``.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> storage.cf(add).where("x", lambda x: x > 2).eval("x", "var_0")
           x  var_0
        0  4     14
        """
        self._var_names([varname])
        keys = key_table(self._graph, self._index, "outer")
        cids, has = cid_column(self._graph, self._index, varname, keys[varname])
        unique, inverse = unique_ids(cids[has])
        [values] = load_columns(self._reader, [(unique, np.ones(unique.size, dtype=bool))])
        plain = values if values.dtype == object else values.tolist()  # the predicate sees Python ints
        passed = np.fromiter((bool(predicate(v)) for v in plain), dtype=bool, count=values.size)
        keep = has.copy()
        keep[has] = passed[inverse]
        return self._restricted(keys.rows(keep))

    @without_gc
    def isin(self, values: Iterable[Any], by: Literal["val", "hid", "cid"] = "val",
             var: str | None = None) -> ComputationFrame:
        """The computations that hold one of ``values`` in ``var``, or in any variable if ``var`` is None.

        ``by="val"`` compares contents (values or Refs); ``by="hid"`` takes Refs
        or hids; ``by="cid"`` takes Refs or content ids (any ref of that value).
        One value (not a list) is looked for alone: ``isin(12)``, ``isin(ref, by="hid")``.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> storage.cf(add).isin([12], var="var_0").eval("x", "var_0")
           x  var_0
        0  2     12
        """
        if by not in ("val", "hid", "cid"):
            raise FrameArgumentError(f"isin takes by='val', by='hid' or by='cid', got by={by!r}")
        values = _listed(values)
        names = self._var_names(var) if var is not None else sorted(self._graph.vars)
        keys = key_table(self._graph, self._index, "outer")
        keep = np.zeros(len(keys), dtype=bool)
        if by == "hid":
            hids = ids_of(values, "hid")
            for name in names:
                column = hex_column(self._graph, name, keys[name])
                keep |= np.fromiter((h in hids for h in column), dtype=bool, count=column.size)
            return self._restricted(keys.rows(keep))
        # A Ref's content id is its cid, so content_id() covers values and Refs.
        wanted = ids_of(values, "cid") if by == "cid" else {content_id(v) for v in values}
        sought = np.array(sorted(bytes.fromhex(c) for c in wanted), dtype=RAW)
        for name in names:
            cids, has = cid_column(self._graph, self._index, name, keys[name])
            keep |= has & np.isin(cids, sought)
        return self._restricted(keys.rows(keep))

    def _restricted(self, rows: KeyTable) -> ComputationFrame:
        """The frame holding only the refs and calls of these rows of its key table."""
        graph = self._graph
        vars = {v: graph.vars[v].restricted_to(present_keys(rows[v])[0]) for v in graph.vars}
        ops = {o: graph.ops[o].restricted_to(present_keys(rows[o])[0]) for o in graph.ops}
        return self._new(graph.restricted(vars, ops))

    def __or__(self, other: ComputationFrame) -> ComputationFrame:
        """The calls and refs of either frame, with the values on the edges of every call.

        Nodes are one only when the graphs show it (``memostore.cf.combine``):
        an op node of the same name and op, a variable on the same edge of such
        an op node (named as in this frame), or two variables without edges of
        one name. Any other node of ``other`` stays its own, renamed if this
        frame uses its name: ``storage.cf(f) | storage.cf(g)`` keeps ``f``'s
        and ``g``'s outputs apart even though both are ``var_0``, and
        ``merge_vars()`` then joins ``f``'s output and ``g``'s input if ``g``
        read what ``f`` made. Raises FrameArgumentError if a variable of
        ``other`` sits on edges of two variables of this frame.

        >>> from memostore import Storage, op
        >>> @op
        ... def inc(x): return x + 1
        >>> @op
        ... def double(y): return y * 2
        >>> with Storage() as storage:
        ...     _ = double(inc(1))
        >>> both = storage.cf(inc) | storage.cf(double)
        >>> print(both)
        ComputationFrame with:
            4 variable(s) (3 unique refs)
            2 operation(s) (2 unique calls)
        Computational graph:
            var_0@output_0 = inc(x=x)
            var_1@output_0 = double(y=y)
        >>> both.merge_vars().df(include_calls=False)
           x  y  var_1
        0  1  2      4
        """
        return self._new(with_edge_refs(union(self._graph, self._same_store(other)._graph), self._index))

    def __and__(self, other: ComputationFrame) -> ComputationFrame:
        """The calls and refs in both frames, on the nodes and edges both have (the same nodes as for ``|``)."""
        return self._new(intersection(self._graph, self._same_store(other)._graph))

    def __sub__(self, other: ComputationFrame) -> ComputationFrame:
        """The calls of this frame not in ``other`` (node by node, the same nodes as for ``|``), with every
        value they use or make, and this frame's refs not in ``other``.

        >>> from memostore import Storage, op
        >>> @op
        ... def scale(x, factor): return x * factor
        >>> with Storage() as storage:
        ...     _ = scale(10, 2), scale(10, 3)
        >>> cf = storage.cf(scale)
        >>> (cf - cf.where("factor", lambda v: v == 2)).df(include_calls=False)
           factor   x  var_0
        0       3  10     30
        """
        vars, ops = without(self._graph, self._same_store(other)._graph)
        return self._new(with_edge_refs(self._graph.restricted(vars, ops), self._index))

    def _same_store(self, other: ComputationFrame) -> ComputationFrame:
        if not isinstance(other, ComputationFrame) or other._reader != self._reader:
            raise FrameArgumentError("frames combine only with frames over the same storage")
        return other

    # --- display ----------------------------------------------------------------

    def draw(self, verbose: bool = False, path: str | None = None) -> graphviz.Digraph:
        """The graph as a ``graphviz.Digraph`` (SVG in Jupyter); ``path`` also writes svg/png/pdf.

        >>> from memostore import Storage, op
        >>> @op
        ... def add(x, y): return x + y
        >>> with Storage() as storage:
        ...     _ = add(2, 10), add(4, 10)
        >>> print(storage.cf(add).draw().source)
        digraph {
        ...
            var__x -> op__add [label=x]
            var__y -> op__add [label=y]
            op__add -> var__var_0 [label=output_0]
        }
        """
        from memostore.draw import draw_graph

        return draw_graph(self._graph, verbose=verbose, path=path)

    def __repr__(self) -> str:
        graph = self._graph
        refs = functools.reduce(operator.or_, graph.vars.values(), HidSet())
        calls = functools.reduce(operator.or_, graph.ops.values(), HidSet())
        lines = [
            "ComputationFrame with:",
            f"    {len(graph.vars)} variable(s) ({len(refs)} unique refs)",
            f"    {len(graph.ops)} operation(s) ({len(calls)} unique calls)",
            "Computational graph:",
        ]
        for node in graph.topological_ops():
            inputs = ", ".join(f"{e.name}={e.var}" for e in sorted(graph.edges_of(node, IN), key=lambda e: e.name))
            outputs = ", ".join(f"{e.var}@{e.name}" for e in graph.edges_of(node, OUT))
            label = node if graph.op_names[node] == node else f"{node}[{graph.op_names[node]}]"
            lines.append(f"    {outputs + ' = ' if outputs else ''}{label}({inputs})")
        connected = {e.var for e in graph.edges}
        lines.extend(f"    {var}" for var in column_order(graph) if var in graph.vars and var not in connected)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from memostore.draw import frame_html

        return frame_html(self._graph, repr(self))


def _listed(values: Any) -> Iterable[Any]:
    """``isin``'s values: one value that is no list (``12``, ``"a"``, a Ref) stands for itself."""
    if isinstance(values, dict):  # its keys, or the dict as one value? Neither is safe to guess.
        raise FrameArgumentError("isin takes a list of values (or one value that is not a dict); to look for "
                                 "one dict value, pass it in a list: cf.isin([value])")
    if isinstance(values, (str, bytes, Ref)) or not isinstance(values, Iterable):
        return [values]
    return values
