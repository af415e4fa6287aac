"""FrameGraph -> pandas DataFrame: one row per (partial) computation.

Each op node gives a table of its calls with the ref on each of its edges,
as integer keys; tables are joined on the variables they share, in
topological order (outer joins keep partial computations, with None where a
path is missing). A missing key never matches another missing key. Values are
then loaded in one batch, each distinct value once; Calls are read from the
store only when used (``StoredCall``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol

import numpy as np

from memostore.cf.columns import CallIndex, ColumnReader
from memostore.cf.graph import IN, FrameGraph
from memostore.cf.hidset import checked_keys_and_order, hex_strings, member
from memostore.model import Ref

if TYPE_CHECKING:
    import pandas as pd

JoinHow = Literal["outer", "inner"]
ValuesMode = Literal["objs", "refs"]


class ValueReader(ColumnReader, Protocol):
    """The reads a table needs beyond expansion: values."""

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]: ...


def key_table(graph: FrameGraph, index: CallIndex, join_how: JoinHow = "outer") -> pd.DataFrame:
    """The key (``Int64``, missing: NA) of the ref on each variable and the call in each op, per row.

    Tables are joined on integer keys; ``hex_column`` and ``cid_column`` turn
    a column back into hids and content ids.
    """
    import pandas as pd

    tables = {node: _node_table(graph, node, index) for node in graph.ops}
    parts = [_join_component(component, tables, join_how) for component in _components(graph)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    frame = _add_unreached_refs(frame, graph, join_how)
    frame = frame.reindex(columns=column_order(graph))
    return frame.astype("Int64").reset_index(drop=True)


def present_keys(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 keys of the present cells, present mask) of a key column."""
    present = column.notna().to_numpy()
    return column.to_numpy(dtype=np.int64, na_value=0)[present].view(np.uint64), present


def hex_column(graph: FrameGraph, name: str, column: pd.Series) -> np.ndarray:
    """A key column as an object array of hids (None where missing)."""
    keys, present = present_keys(column)
    hids = graph.vars[name] if name in graph.vars else graph.ops[name]
    result = np.full(present.size, None, dtype=object)
    result[present] = hex_strings(hids.hexes_of(keys))
    return result


def cid_column(graph: FrameGraph, index: CallIndex, var: str, column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(``S32`` cid per row, mask of rows that have one) of a variable's key column."""
    keys, present = present_keys(column)
    cids, known = index.cids_of_refs(keys, graph.vars[var].hexes_of(keys))
    column_cids = np.zeros(present.size, dtype="S32")
    column_cids[present] = cids
    has = present.copy()
    has[present] = known
    return column_cids, has


def load_columns(reader: ValueReader, cid_columns: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The values of several cid columns (object arrays, None where missing), each value loaded once."""
    wanted = np.concatenate([cids[has] for cids, has in cid_columns]) if cid_columns else np.empty(0, "S32")
    unique, inverse = unique_ids(wanted)
    names = hex_strings(unique)
    loaded = reader.load_values(names)
    values = np.fromiter(map(loaded.__getitem__, names), dtype=object, count=len(names))
    columns, start = [], 0
    for cids, has in cid_columns:
        column = np.full(has.size, None, dtype=object)
        count = int(has.sum())
        column[has] = values[inverse[start:start + count]]
        start += count
        columns.append(column)
    return columns


def unique_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` for an ``S32`` column, sorting integer keys, not strings."""
    keys, order = checked_keys_and_order(ids)
    if not keys.size:
        return ids[:0], np.empty(0, dtype=np.intp)
    sorted_keys = keys[order]
    first = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
    inverse = np.empty(keys.size, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ids[order[first]], inverse


def render(graph: FrameGraph, keys: pd.DataFrame, reader: ValueReader, index: CallIndex, values: ValuesMode,
           lazy_vars: Iterable[str], include_calls: bool, include_versions: bool) -> pd.DataFrame:
    """The user's DataFrame: values (or Refs) for variables, Calls for ops."""
    import pandas as pd

    lazy = set(lazy_vars)
    unknown = sorted(lazy - set(graph.vars))
    if unknown:
        raise KeyError(f"lazy_vars names no variable of this frame: {unknown}; variables: {sorted(graph.vars)}")
    cids = {var: cid_column(graph, index, var, keys[var]) for var in graph.vars}
    loaded_vars = [var for var in graph.vars if values == "objs" and var not in lazy]
    columns: dict[str, Any] = dict(zip(loaded_vars, load_columns(reader, [cids[var] for var in loaded_vars])))
    for var in graph.vars:
        if var not in columns:
            hids = hex_column(graph, var, keys[var])
            column_cids, has = cids[var]
            column = np.full(hids.size, None, dtype=object)
            column[has] = [Ref(c, h) for c, h in zip(hex_strings(column_cids[has]), hids[has].tolist())]
            columns[var] = column
    for node in graph.ops:
        call_keys, present = present_keys(keys[node])
        unique, inverse = np.unique(call_keys, return_inverse=True)
        at = np.searchsorted(index.c_key, unique)
        calls = np.full(present.size, None, dtype=object)
        calls[present] = index.calls(unique)[inverse]
        if include_versions:
            columns[f"{node}.version"] = _by_row(np.array(index.versions.names, dtype=object)[index.c_version[at]],
                                                 inverse, present)
        if index.c_failed[at].any():
            # Failed calls (stored by map's on_error="record") show why they have no outputs.
            status = np.where(index.c_failed[at], "failed", "ok").astype(object)
            columns[f"{node}.status"] = _by_row(status, inverse, present)
        columns[node] = calls
    order = []
    for name in keys.columns:
        if name in graph.ops and not include_calls:
            continue
        order.append(name)
        order.extend(c for c in (f"{name}.version", f"{name}.status") if c in columns)
    table = pd.DataFrame({name: columns[name] for name in order}, index=pd.RangeIndex(len(keys)))
    return table.infer_objects() if values == "objs" else table


def _by_row(per_call: np.ndarray, inverse: np.ndarray, present: np.ndarray) -> np.ndarray:
    column = np.full(present.size, None, dtype=object)
    column[present] = per_call[inverse]
    return column


def column_order(graph: FrameGraph) -> list[str]:
    """Inputs, then the op, then its outputs, op by op in topological order."""
    order: list[str] = []
    for node in graph.topological_ops():
        for edge in graph.edges_of(node, IN):
            if edge.var not in order:
                order.append(edge.var)
        order.append(node)
        for edge in graph.edges_of(node):
            if edge.direction != IN and edge.var not in order:
                order.append(edge.var)
    order.extend(sorted(v for v in graph.vars if v not in order))
    return order


def _node_table(graph: FrameGraph, node: str, index: CallIndex) -> pd.DataFrame:
    """The node's calls (sorted keys) with the ref key on each of its edges (missing: NA)."""
    import pandas as pd

    keys = index.fetch(graph.ops[node])
    columns = {node: pd.array(keys.view(np.int64), dtype="Int64")}
    rows = index.edge_rows(keys)
    for edge in graph.edges_of(node):
        code = index.names.find(edge.name)
        on_edge = rows[(index.e_out[rows] == (edge.direction != IN)) & (index.e_name[rows] == code)]
        at = np.searchsorted(keys, index.e_call[on_edge])
        values, present = np.zeros(keys.size, dtype=np.int64), np.zeros(keys.size, dtype=bool)
        values[at], present[at] = index.e_ref[on_edge].view(np.int64), True
        columns[edge.var] = pd.arrays.IntegerArray(values, ~present)
    return pd.DataFrame(columns)


def _components(graph: FrameGraph) -> list[list[str]]:
    """Op nodes grouped by connection through shared variables, each in topological order."""
    order = graph.topological_ops()
    vars_of = {node: {e.var for e in graph.edges_of(node)} for node in order}
    components: list[list[str]] = []
    remaining = list(order)
    while remaining:
        component = [remaining.pop(0)]
        reached = set(vars_of[component[0]])
        grew = True
        while grew:
            grew = False
            for node in list(remaining):
                if vars_of[node] & reached:
                    component.append(node)
                    reached |= vars_of[node]
                    remaining.remove(node)
                    grew = True
                    break
        components.append(component)
    return components


def _join_component(nodes: list[str], tables: dict[str, pd.DataFrame], join_how: JoinHow) -> pd.DataFrame:
    joined = tables[nodes[0]]
    for node in nodes[1:]:
        right = tables[node]
        keys = [c for c in right.columns if c in joined.columns]
        joined = _merge_without_missing_matches(joined, right, keys, join_how)
    return joined


_LEFT_ROW = "\x00left_row"
_RIGHT_ROW = "\x00right_row"


def _merge_without_missing_matches(left: pd.DataFrame, right: pd.DataFrame, keys: list[str],
                                   join_how: JoinHow) -> pd.DataFrame:
    """Join on the shared variables each left row has; a missing key matches nothing.

    A partial row (a computation that stopped early) joins on the keys it has
    and takes the right row's values for the others, so rows are not split
    just because one of them is shorter.
    """
    import pandas as pd

    right = right.assign(**{_RIGHT_ROW: range(len(right))})
    missing = left[keys].isna().to_numpy()
    pattern = (missing * (1 << pd.RangeIndex(len(keys)).to_numpy())).sum(axis=1)
    pieces, matched = [], set()
    for code in sorted(set(pattern.tolist())):
        group = left[pattern == code]
        present = [k for i, k in enumerate(keys) if not (code >> i) & 1]
        if not present:
            if join_how == "outer":
                pieces.append(group)
            continue
        candidates = right.dropna(subset=present)
        merged = group.merge(candidates, on=present, how="left" if join_how == "outer" else "inner",
                             suffixes=("", "\x00right"))
        for key in keys:
            if key not in present:
                merged[key] = merged[key + "\x00right"]
                merged = merged.drop(columns=[key + "\x00right"])
        matched.update(merged[_RIGHT_ROW].dropna().astype(int).tolist())
        pieces.append(merged)
    if join_how == "outer":
        pieces.append(right[~right[_RIGHT_ROW].isin(matched)])
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return pd.DataFrame(columns=[*left.columns, *[c for c in right.columns if c not in left.columns]])
    return pd.concat(pieces, ignore_index=True).drop(columns=[_RIGHT_ROW])


def _add_unreached_refs(frame: pd.DataFrame, graph: FrameGraph, join_how: JoinHow) -> pd.DataFrame:
    """Rows for refs of a variable that no call row reaches (outer joins only)."""
    import pandas as pd

    if join_how != "outer":
        return frame
    extra = []
    for var in sorted(graph.vars):
        refs = graph.vars[var].keys
        if var in frame.columns:
            reached, _ = present_keys(frame[var])
            refs = refs[~member(refs, np.sort(reached))]
        if refs.size:
            extra.append(pd.DataFrame({var: pd.array(refs.view(np.int64), dtype="Int64")}))
    if not extra:
        return frame
    return pd.concat([frame, *extra], ignore_index=True)
