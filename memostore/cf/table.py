"""FrameGraph -> pandas DataFrame: one row per (partial) computation.

Each op node gives a table of its calls with the ref hid on each of its
edges; tables are joined on the variables they share, in topological order
(outer joins keep partial computations, with None where a path is missing).
A missing key never matches another missing key. Values are then loaded in
one batch per variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol

from memostore.cf.columns import CallIndex, ColumnReader, keys_of_hex
from memostore.cf.graph import IN, FrameGraph
from memostore.model import Ref

if TYPE_CHECKING:
    import pandas as pd

JoinHow = Literal["outer", "inner"]
ValuesMode = Literal["objs", "refs"]


class ValueReader(ColumnReader, Protocol):
    """The reads a table needs beyond expansion: values."""

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]: ...


def hid_table(graph: FrameGraph, index: CallIndex,
              join_how: JoinHow = "outer") -> tuple[pd.DataFrame, dict[str, list[str | None]]]:
    """Ref hids (var columns) and call hids (op columns) per row, and each var column's cids.

    Tables are joined on integer keys; hids are put back once, at the end.
    """
    import pandas as pd

    tables = {node: _node_table(graph, node, index) for node in graph.ops}
    parts = [_join_component(component, tables, join_how) for component in _components(graph)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    frame = pd.DataFrame({name: _hex_column(graph, index, name, frame[name]) for name in frame.columns})
    frame = _add_unreached_refs(frame, graph, join_how)
    frame = frame.reindex(columns=column_order(graph))
    frame = frame.astype(object).where(frame.notna(), None).reset_index(drop=True)
    return frame, {var: index.cid_column(frame[var].tolist()) for var in graph.vars}


def _hex_column(graph: FrameGraph, index: CallIndex, name: str, column: pd.Series) -> list[str | None]:
    """A key column as hids (None where missing): calls from the index, refs from the variable's own hids."""
    import numpy as np

    missing = column.isna().to_numpy()
    keys = column.to_numpy(dtype=np.int64, na_value=0).view(np.uint64)
    if name in graph.ops:
        known = np.unique(keys[~missing])
        hexes = np.array(index.call_hexes(known), dtype=object)
    else:
        hids = list(graph.vars[name])
        unsorted = keys_of_hex("".join(hids))
        order = np.argsort(unsorted)
        known, hexes = unsorted[order], np.array(hids, dtype=object)[order]
    at = np.searchsorted(known, keys)
    at[missing | (at >= known.size)] = 0
    result = hexes[at] if known.size else np.full(keys.size, None, dtype=object)
    result[missing] = None
    return result.tolist()  # type: ignore[no-any-return]


def render(graph: FrameGraph, hids: pd.DataFrame, cids: dict[str, list[str | None]], reader: ValueReader,
           index: CallIndex, values: ValuesMode, lazy_vars: Iterable[str], include_calls: bool,
           include_versions: bool) -> pd.DataFrame:
    """The user's DataFrame: values (or Refs) for variables, Calls for ops."""
    lazy = set(lazy_vars)
    unknown = sorted(lazy - set(graph.vars))
    if unknown:
        raise KeyError(f"lazy_vars names no variable of this frame: {unknown}; variables: {sorted(graph.vars)}")
    table = hids.copy()
    loaded = {}
    if values == "objs":  # one batch for every variable's values
        loaded = reader.load_values({c for var in graph.vars if var not in lazy for c in cids[var] if c is not None})
    for var in graph.vars:
        if values == "objs" and var not in lazy:
            table[var] = [None if c is None else loaded[c] for c in cids[var]]
        else:
            table[var] = [None if h is None or c is None else Ref(c, h) for h, c in zip(hids[var].tolist(), cids[var])]
    for node in graph.ops:
        column_hids = hids[node].tolist()
        calls = index.calls(h for h in column_hids if h is not None)
        column_calls = [None if h is None else calls[h] for h in column_hids]
        if include_versions:
            position = table.columns.get_loc(node) + 1
            table.insert(position, f"{node}.version", [None if c is None else c.version for c in column_calls])
        if any(c is not None and c.status != "ok" for c in column_calls):
            # Failed calls (stored by map's on_error="record") show why they have no outputs.
            position = table.columns.get_loc(node) + 1
            table.insert(position, f"{node}.status", [None if c is None else c.status for c in column_calls])
        table[node] = column_calls
    if not include_calls:
        table = table.drop(columns=list(graph.ops))
    return table.infer_objects() if values == "objs" else table


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
    import numpy as np
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
    extra: list[dict[str, str]] = []
    for var in sorted(graph.vars):
        present = set(frame[var].dropna()) if var in frame.columns else set()
        extra.extend({var: hid} for hid in sorted(graph.vars[var] - present))
    if not extra:
        return frame
    return pd.concat([frame, pd.DataFrame(extra, dtype=object)], ignore_index=True)
