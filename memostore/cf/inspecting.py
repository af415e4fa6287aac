"""Looking into a frame: its sources and sinks, what a node holds, its Refs and Calls.

Nothing here loads a large value: ``info`` describes a variable's values from
their stored rows (format and size), loading only the small ones to name
their types.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Any, Iterable, overload

import numpy as np

from memostore.cf.base import FrameBase
from memostore.cf.graph import IN, OUT
from memostore.cf.hidset import hex_list
from memostore.errors import FrameArgumentError, NotStoredError
from memostore.model import Call, Ref

# Values up to this size are loaded by ``info`` to name their Python type;
# larger ones are described by their stored format alone.
INFO_LOAD_MAX_BYTES = 64 * 1024


_ID = re.compile(r"[0-9a-f]{32}")


def ids_of(values: Iterable[Any], by: str) -> set[str]:
    """The hids (``by="hid"``) or content ids (``by="cid"``) that ``cf.isin`` looks for: Refs' or given ones.

    Anything else is refused: a value passed by mistake would match nothing and give an empty frame.
    """
    attribute = "hid" if by == "hid" else "cid"
    found = {getattr(v, attribute) if isinstance(v, Ref) else v.lower() if isinstance(v, str) else v
             for v in values}
    bad = [v for v in found if not isinstance(v, str) or not _ID.fullmatch(v)]
    if bad:
        kind = "history ids" if by == "hid" else "content ids"
        shown = ", ".join(repr(v) for v in sorted(bad, key=repr)[:3])
        shown += f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise FrameArgumentError(f"isin(by={by!r}) takes Refs or {kind} (32 hex digits), got {shown}; "
                                 "to look for values, use by='val' (the default)")
    return found


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """What one node of a frame holds; ``str()`` (and the notebook display) is a short report.

    For an op node: ``count`` calls, per ``versions`` (version -> calls), of
    which ``failed`` failed. For a variable: ``count`` refs of ``distinct``
    values, ``types`` (type name, or ``<format> (not loaded)`` for large
    values -> refs) and ``stored_bytes``. ``inputs``/``outputs`` are the
    neighbouring nodes.
    """

    name: str
    kind: str
    count: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op: str | None = None
    versions: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: int = 0
    distinct: int = 0
    types: dict[str, int] = dataclasses.field(default_factory=dict)
    stored_bytes: int = 0

    def __str__(self) -> str:
        if self.kind == "op":
            versions = ", ".join(f"{v}: {n}" for v, n in sorted(self.versions.items()))
            lines = [f"op node {self.name} (op {self.op}): {self.count} call(s), {len(self.versions)} version(s)"
                     f"{f', {self.failed} failed' if self.failed else ''}", f"    versions: {versions or '-'}"]
        else:
            types = ", ".join(f"{t}: {n}" for t, n in sorted(self.types.items()))
            lines = [f"variable {self.name}: {self.count} ref(s), {self.distinct} distinct value(s), "
                     f"{self.stored_bytes} bytes stored", f"    types: {types or '-'}"]
        lines.append(f"    from: {', '.join(self.inputs) or '-'}; to: {', '.join(self.outputs) or '-'}")
        return "\n".join(lines)

    __repr__ = __str__


class Inspecting(FrameBase):
    """Read-only views of a ComputationFrame (mixed into it; see ``memostore.cf.frame``)."""

    @property
    def sources(self) -> set[str]:
        """The variables no op of the frame produces (its inputs).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> sorted(cf.sources)
        ['x', 'x_1']
        """
        return {v for v in self._graph.vars if not self._graph.edges_of(v, OUT)}

    @property
    def sinks(self) -> set[str]:
        """The variables no op of the frame reads (its results).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> cf.sinks
        {'var_0'}
        """
        return {v for v in self._graph.vars if not self._graph.edges_of(v, IN)}

    def refs_by_var(self) -> dict[str, set[Ref]]:
        """Variable name -> its Refs (values not loaded: ``storage.unwrap`` loads them).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> refs = cf.refs_by_var()
        >>> {var: [storage.unwrap(ref) for ref in refs[var]] for var in sorted(refs)}
        {'a': [2], 'b': [4], 'var_0': [6], 'x': [1], 'x_1': [2]}
        """
        result: dict[str, set[Ref]] = {}
        for var, hids in self._graph.vars.items():
            cids, known = self._index.cids_of_refs(hids.keys, hids)
            if not known.all():
                missing = hex_list(hids.raw[~known])
                raise NotStoredError(f"variable {var!r} holds refs that are not stored: {missing[:3]}")
            result[var] = {Ref(cid, hid) for cid, hid in zip(hex_list(cids), hex_list(hids.raw), strict=True)}
        return result

    def calls_by_op(self) -> dict[str, set[Call]]:
        """Op node name -> its Calls (read from the store when a field beyond hid/op/version is used).

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> calls = cf.calls_by_op()
        >>> {node: [call.op for call in calls[node]] for node in sorted(calls)}
        {'add_up': ['add_up'], 'double_it': ['double_it'], 'double_it_1': ['double_it']}
        """
        result: dict[str, set[Call]] = {}
        for node, hids in self._graph.ops.items():
            keys = self._index.fetch(hids)
            result[node] = set(self._index.calls(keys).tolist())
        return result

    @overload
    def info(self) -> None: ...

    @overload
    def info(self, node: str) -> NodeInfo: ...

    def info(self, node: str | None = None) -> NodeInfo | None:
        """What a node holds: an op node's calls per version, or a variable's refs, value types and size.

        Large values are not loaded (see ``INFO_LOAD_MAX_BYTES``). In a script,
        ``print(cf.info("model"))``. With no node, as in mandala, it prints the
        frame's summary (its nodes' counts and graph) and returns None.

        >>> from memostore import Storage, op
        >>> @op
        ... def double_it(x): return 2 * x
        >>> @op
        ... def add_up(a, b): return a + b
        >>> with Storage() as storage:
        ...     _ = add_up(double_it(1), double_it(2))
        >>> cf = storage.cf(add_up).expand_back(recursive=True)
        >>> cf.info("a")
        variable a: 1 ref(s), 1 distinct value(s), ... bytes stored
            types: int: 1
            from: double_it; to: add_up
        >>> cf.info("add_up").count
        1
        >>> cf.info()
        ComputationFrame with:
            5 variable(s) (5 unique refs)
            3 operation(s) (3 unique calls)
        Computational graph:
        ...
        """
        if node is None:
            print(repr(self))
            return None
        [node] = self._node_names([node])
        graph = self._graph
        if node in graph.ops:  # its variables
            inputs = tuple(sorted({e.var for e in graph.edges_of(node, IN)}))
            outputs = tuple(sorted({e.var for e in graph.edges_of(node, OUT)}))
        else:  # its producers and consumers
            inputs = tuple(sorted({e.op_node for e in graph.edges_of(node, OUT)}))
            outputs = tuple(sorted({e.op_node for e in graph.edges_of(node, IN)}))
        if node in graph.ops:
            index = self._index
            at = np.searchsorted(index.c_key, index.fetch(graph.ops[node]))
            versions = Counter(index.versions.names[c] for c in index.c_version[at].tolist())
            return NodeInfo(node, "op", int(at.size), inputs, outputs, op=graph.op_names[node],
                            versions=dict(versions), failed=int(index.c_failed[at].sum()))
        return self._var_info(node, inputs, outputs)

    def _var_info(self, var: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> NodeInfo:
        hids = self._graph.vars[var]
        cids, known = self._index.cids_of_refs(hids.keys, hids)
        per_cid = Counter(hex_list(cids[known]))
        rows = {row.cid: row for row in self._reader.value_rows(per_cid)}
        small = [cid for cid, row in rows.items() if row.size_bytes <= INFO_LOAD_MAX_BYTES]
        loaded = self._reader.load_values(small)
        types: Counter[str] = Counter()
        for cid, refs in per_cid.items():
            if cid in loaded:
                types[type(loaded[cid]).__name__] += refs
            else:
                types[f"{rows[cid].format} (not loaded)" if cid in rows else "not stored"] += refs
        return NodeInfo(var, "var", len(hids), inputs, outputs, distinct=len(per_cid), types=dict(types),
                        stored_bytes=sum(row.size_bytes for row in rows.values()))
