"""FrameGraph -> pandas DataFrame: one row per (partial) computation.

The rows come from ``rows`` as integer keys of refs and calls. Values are
then loaded in one batch, each distinct value once; Calls are read from the
store only when used (``StoredCall``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol

import numpy as np

from memostore.backends.base import StoredValue
from memostore.cf.columns import CallIndex, ColumnReader
from memostore.cf.graph import IN, OUT, FrameGraph
from memostore.cf.hidset import RAW, checked_raw_keys_and_order, hex_list, unique_inverse
from memostore.cf.rows import Column, KeyTable, key_blocks
from memostore.errors import UnknownNodeError, UntrustedValueError
from memostore.model import Ref
from memostore.reports import exact_column

if TYPE_CHECKING:
    import pandas as pd

JoinHow = Literal["outer", "inner"]
ValuesMode = Literal["objs", "refs"]


class ValueReader(ColumnReader, Protocol):
    """The reads a table needs beyond expansion: values (and their stored rows, for ``info``)."""

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]: ...

    def load_value_column(self, cids: np.ndarray) -> np.ndarray: ...

    def values_ahead(self, values: int) -> AbstractContextManager[None]: ...

    def value_rows(self, cids: Iterable[str]) -> list[StoredValue]: ...


def key_table(graph: FrameGraph, index: CallIndex, join_how: JoinHow = "outer") -> KeyTable:
    """The key of the ref on each variable and the call in each op, per row.

    Rows are computations (see ``rows``); ``join_how="inner"`` keeps the
    whole ones. ``hex_column`` and ``cid_column`` turn a column back into
    hids and content ids.
    """
    return KeyTable.of_blocks(key_blocks(graph, index, join_how), column_order(graph))


def present_keys(column: Column) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 keys of the present cells, present mask) of a key column."""
    values, present = column
    return values[present], present


def hex_column(graph: FrameGraph, name: str, column: Column) -> np.ndarray:
    """A key column as an object array of hids (None where missing)."""
    keys, present = present_keys(column)
    hids = graph.vars[name] if name in graph.vars else graph.ops[name]
    result = np.full(present.size, None, dtype=object)
    result[present] = hex_list(hids.raw_of(keys))
    return result


def cid_column(graph: FrameGraph, index: CallIndex, var: str, column: Column) -> tuple[np.ndarray, np.ndarray]:
    """(``RAW`` cid per row, mask of rows that have one) of a variable's key column."""
    keys, present = present_keys(column)
    cids, known = index.cids_of_refs(keys, graph.vars[var])
    column_cids = np.zeros(present.size, dtype=RAW)
    column_cids[present] = cids
    has = present.copy()
    has[present] = known
    return column_cids, has


def load_columns(reader: ValueReader, cid_columns: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The values of several cid columns, each value loaded once: object arrays (None where missing),
    or ``int64`` arrays for whole columns of plain ints."""
    wanted = np.concatenate([cids[has] for cids, has in cid_columns]) if cid_columns else np.empty(0, RAW)
    unique, inverse = unique_ids(wanted)
    values = reader.load_value_column(unique)
    columns, start = [], 0
    for _cids, has in cid_columns:
        count = int(has.sum())
        chosen = values[inverse[start:start + count]]
        start += count
        if values.dtype != object and count == has.size:
            columns.append(chosen)
            continue
        column = np.full(has.size, None, dtype=object)
        column[has] = chosen if values.dtype == object else chosen.tolist()
        columns.append(column)
    return columns


def _untrusted(graph: FrameGraph, cids: dict[str, tuple[np.ndarray, np.ndarray]], loaded_vars: list[str],
               err: UntrustedValueError) -> UntrustedValueError:
    """The refusal to unpickle, naming the variable that holds the value and the op that made it."""
    holders = [var for var in loaded_vars if err.cid in hex_list(cids[var][0][cids[var][1]])]
    if not holders or err.cid is None:
        return err
    var = holders[0]
    makers = sorted({edge.op_node for edge in graph.edges if edge.var == var and edge.direction == OUT})
    made = f" (made by op {', '.join(map(repr, makers))})" if makers else " (values passed in by hand)"
    return UntrustedValueError(f"cf.df(): variable {var!r}{made} holds value {err.cid[:12]}..., stored as a pickle, "
                               "and this storage has allow_pickle=False: loading a pickle can run code; open "
                               "the storage with allow_pickle=True if you trust whoever wrote it, or leave the "
                               f"variable unloaded: df(lazy_vars=[{var!r}]) or df(values='refs')", cid=err.cid)


def unique_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` for a ``RAW`` column, sorting integer keys, not strings."""
    keys, order = checked_raw_keys_and_order(ids)
    first, inverse = unique_inverse(keys, order)
    return ids[first], inverse


def render(graph: FrameGraph, keys: KeyTable, reader: ValueReader, index: CallIndex, values: ValuesMode,
           lazy_vars: Iterable[str], include_calls: bool, include_versions: bool) -> pd.DataFrame:
    """The user's DataFrame: values (or Refs) for variables, Calls for ops (with versions and statuses)."""
    import pandas as pd

    lazy = set(lazy_vars)
    unknown = sorted(lazy - set(graph.vars))
    if unknown:
        raise UnknownNodeError(f"lazy_vars names no variable of this frame: {unknown}; "
                               f"variables: {sorted(graph.vars)}")
    cids = {var: cid_column(graph, index, var, keys[var]) for var in graph.vars}
    loaded_vars = [var for var in graph.vars if values == "objs" and var not in lazy]
    try:
        loaded = load_columns(reader, [cids[var] for var in loaded_vars])
    except UntrustedValueError as err:
        raise _untrusted(graph, cids, loaded_vars, err) from None
    columns: dict[str, Any] = dict(zip(loaded_vars, loaded, strict=True))
    for var in graph.vars:
        if var not in columns:
            hids = hex_column(graph, var, keys[var])
            column_cids, has = cids[var]
            column = np.full(hids.size, None, dtype=object)
            # fromiter: a list would make numpy ask each Ref for its length, which a Ref refuses (slowly).
            column[has] = np.fromiter(map(Ref, hex_list(column_cids[has]), hids[has].tolist()), dtype=object,
                                      count=int(has.sum()))
            columns[var] = column
    order: list[str] = []
    for name in keys.columns:
        if name in graph.ops:
            node_columns = _op_columns(graph, keys, index, name, include_calls, include_versions)
            columns.update(node_columns)
            order.extend(node_columns)
        else:
            order.append(name)
    if values == "objs":  # typed as pandas would, but ints with missing rows stay ints (see exact_column)
        columns = {name: exact_column(column) for name, column in columns.items()}
    return pd.DataFrame({name: columns[name] for name in order}, index=pd.RangeIndex(len(keys)))


def _op_columns(graph: FrameGraph, keys: KeyTable, index: CallIndex, node: str, include_calls: bool,
                include_versions: bool) -> dict[str, np.ndarray]:
    """An op node's columns: its Calls, ``<node>.version``, and ``<node>.status`` if any call failed.

    A variable may be named like one of them (an output named ``"fit.version"``): the
    extra column then takes the next free name (``fit.version_1``).
    """
    call_keys, present = present_keys(keys[node])
    first, inverse = unique_inverse(call_keys)
    unique = call_keys[first]
    at = np.searchsorted(index.c_key, unique)
    columns: dict[str, np.ndarray] = {}
    if include_calls:
        calls = np.full(present.size, None, dtype=object)
        calls[present] = index.calls(unique)[inverse]
        columns[node] = calls
    taken = graph.names()
    if include_versions:
        versions = np.array(index.versions.names, dtype=object)[index.c_version[at]]
        columns[graph.fresh_name(f"{node}.version", taken)] = _by_row(versions, inverse, present)
    if index.c_failed[at].any():
        # Failed calls (stored by map's on_error="record") show why they have no outputs.
        status = np.where(index.c_failed[at], "failed", "ok").astype(object)
        columns[graph.fresh_name(f"{node}.status", taken)] = _by_row(status, inverse, present)
    return columns


def _by_row(per_call: np.ndarray, inverse: np.ndarray, present: np.ndarray) -> np.ndarray:
    column = np.full(present.size, None, dtype=object)
    column[present] = per_call[inverse]
    return column


def column_order(graph: FrameGraph) -> list[str]:
    """Inputs, then the op, then its outputs, op by op in topological order."""
    order: dict[str, None] = {}
    for node in graph.topological_ops():
        order.update((edge.var, None) for edge in graph.edges_of(node, IN))
        order[node] = None
        order.update((edge.var, None) for edge in graph.edges_of(node, OUT))
    order.update((v, None) for v in sorted(graph.vars) if v not in order)
    return list(order)
