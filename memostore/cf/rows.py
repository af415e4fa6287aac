"""The rows of a frame's table: one per computation, as integer keys.

A computation ends at a *last call*: a call none of whose outputs is read
by a call of the frame (a failed call, a model never evaluated, the final
score). Its row holds that call and, walking upstream, the call that made
each value it holds: each ref has at most one producing call, so every step
is a lookup, never a join that multiplies rows. So

- two ops reading one value (a branch) give a row each, not their product;
- a variable fed by alternative ops (``smooth_a | smooth_b -> final``) gets
  on each row the producer of that row's value, with that producer's inputs;
- a call reached by several computations is on each of their rows;
- a variable joined to an op node by several edges (``train, test =
  split(seed)`` both in ``part``; ``add(a=x, b=x)``; the items of a list)
  matches a call of the node when the row's ref is on ANY of those edges of
  the call, so each ref gets the call's upstream and downstream. A call with
  several distinct refs there has a row per ref (as mandala links a ref to
  its one creator call whatever the edge label). Likewise a variable showing
  an output that reached it along another output edge of its maker (``u``
  fed by ``output_0`` of ``fan``, showing ``output_1`` too) gets the maker.

A call that fits no row (two calls of one op node in one computation) and a
ref that no call holds get rows of their own, so nothing is left out.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import numpy as np

from memostore.cf.columns import CallIndex
from memostore.cf.graph import IN, OUT, FrameEdge, FrameGraph
from memostore.cf.hidset import code_order, member, search, stable_order, unique_keys

Column = tuple[np.ndarray, np.ndarray]  # (uint64 keys, present mask)
Block = dict[str, Column]  # node name -> column, all of one length

_NO_KEYS = np.empty(0, dtype=np.uint64)


class NodeTable:
    """One op node's calls (sorted keys), the ref key on each of its edges, and its *block*.

    The block is the node's calls as rows: a call column and one column per
    variable. A variable joined to the node by several edges of one direction
    (``train, test = split(seed)`` into one ``part``; ``add(a=x, b=x)``; a
    list's items) gives a call one row per distinct ref on those edges, so
    that every such ref is on a row with the call (and, through it, with the
    call's upstream and downstream). A variable joined by edges of both
    directions (a loop, ``x = inc(x)``) keeps one row: its edges fill each
    other's gaps.
    """

    def __init__(self, graph: FrameGraph, node: str, index: CallIndex) -> None:
        keys = index.fetch(graph.ops[node])
        self.calls = keys
        self.edges: dict[FrameEdge, Column] = {}
        rows = index.edge_rows(keys)
        codes = index.e_name[rows].astype(np.int64) * 2 + index.e_out[rows]
        order = code_order(codes)
        rows, codes = rows[order], codes[order]
        for edge in graph.edges_of(node):
            code = index.names.find(edge.name)
            wanted = -1 if code is None else code * 2 + (edge.direction == OUT)
            on_edge = rows[np.searchsorted(codes, wanted, "left"):np.searchsorted(codes, wanted, "right")]
            at = np.searchsorted(keys, index.e_call[on_edge])
            values, present = np.zeros(keys.size, dtype=np.uint64), np.zeros(keys.size, dtype=bool)
            values[at], present[at] = index.e_ref[on_edge], True
            self.edges[edge] = (values, present)
        groups: dict[tuple[str, str], list[Column]] = {}
        for edge, column in self.edges.items():
            groups.setdefault((edge.var, edge.direction), []).append(column)
        # Only the refs the variable holds get a row (a restricted frame may keep a call, not all its refs).
        self.shared = {side: [(v, p & member(v, graph.vars[side[0]].keys)) for v, p in columns]
                       for side, columns in groups.items() if len(columns) > 1}
        self.shared_vars = {var for var, _ in self.shared}
        # block_call: the call (position in ``calls``) of each block row; None when they are the calls.
        self.block_call, spread = _spread(keys.size, self.shared)
        self.block: Block = {node: self.call_column(keys, np.ones(keys.size, dtype=bool))}
        for side, columns in groups.items():
            values, present = spread[side] if side in spread else self.call_column(*columns[0])
            if side[0] in self.block:  # the other direction: fill each other's gaps
                old_values, old_present = self.block[side[0]]
                values = np.where(old_present, old_values, values)
                present = old_present | present
            self.block[side[0]] = (values, present)
        self.spread = spread

    def call_column(self, values: np.ndarray, present: np.ndarray) -> Column:
        """A column per call as a column per block row."""
        if self.block_call is None:
            return values, present
        return values[self.block_call], present[self.block_call]

    def rows_of_calls(self, mask: np.ndarray) -> Block:
        """The block's rows whose call is one where ``mask`` (per call) is True."""
        rows = mask if self.block_call is None else mask[self.block_call]
        return {name: (values[rows], present[rows]) for name, (values, present) in self.block.items()}

    def unread_rows(self, read: np.ndarray) -> Block:
        """The block's rows none of whose outputs (of the ones the row shows) is among ``read``."""
        last = np.ones(self.calls.size, dtype=bool)
        for edge, (values, present) in self.edges.items():
            if edge.direction == OUT and (edge.var, OUT) not in self.spread:
                last &= ~(present & member(values, read))
        last = last if self.block_call is None else last[self.block_call]
        for (_, direction), (values, present) in self.spread.items():
            if direction == OUT:
                last &= ~(present & member(values, read))
        return {name: (values[last], present[last]) for name, (values, present) in self.block.items()}

    def agrees(self, var: str, values: np.ndarray, rows: np.ndarray, producers: Producers,
               node: str) -> np.ndarray:
        """Whether each value is one the call at these block rows made (on any output: a variable may
        show what another output edge carried), or is on one of its several edges into ``var``."""
        calls = rows if self.block_call is None else self.block_call[rows]
        found = producers.made_by(values, node, self.calls[calls])
        for side, columns in self.shared.items():
            if side[0] == var:
                for edge_values, edge_present in columns:
                    found |= edge_present[calls] & (edge_values[calls] == values)
        return found

    @cached_property
    def made(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted output ref keys, the block row that holds each one): how rows find their producer
        (sorted only for a node that is some row's producer)."""
        columns = [self.call_column(*column) for edge, column in self.edges.items()
                   if edge.direction == OUT and (edge.var, OUT) not in self.spread]
        columns += [column for side, column in self.spread.items() if side[1] == OUT]
        refs = np.concatenate([_NO_KEYS, *(values[present] for values, present in columns)])
        rows = np.concatenate([np.empty(0, dtype=np.intp), *(np.flatnonzero(present) for _, present in columns)])
        order = stable_order(refs)
        return refs[order], rows[order]


Sides = dict[tuple[str, str], Column]  # (variable, direction) -> column


def _spread(size: int, shared: dict[tuple[str, str], list[Column]]) -> tuple[np.ndarray | None, Sides]:
    """(call of each row, side -> column) when each call takes one row per distinct ref on each side's
    edges (one row, without a ref, when it has none there); (None, {}) when no side has several edges."""
    if not shared:
        return None, {}
    block_call = np.arange(size)
    columns: Sides = {}
    for side, edges in shared.items():
        calls = np.concatenate([np.flatnonzero(p) for _, p in edges])
        refs = np.concatenate([v[p] for v, p in edges])
        order = np.lexsort((refs, calls))
        calls, refs = calls[order], refs[order]
        fresh = np.ones(calls.size, dtype=bool)
        fresh[1:] = (calls[1:] != calls[:-1]) | (refs[1:] != refs[:-1])
        calls, refs = calls[fresh], refs[fresh]
        counts = np.bincount(calls, minlength=size)
        first = np.cumsum(counts) - counts
        per_row = np.maximum(counts, 1)[block_call]
        old_rows = np.repeat(np.arange(block_call.size), per_row)
        offset = np.arange(old_rows.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        block_call = block_call[old_rows]
        present = counts[block_call] > 0
        values = np.zeros(block_call.size, dtype=np.uint64)
        values[present] = refs[first[block_call[present]] + offset[present]]
        columns = {s: (v[old_rows], p[old_rows]) for s, (v, p) in columns.items()}
        columns[side] = (values, present)
    return block_call, columns


class Producers:
    """Every output ref of the frame's calls, sorted, with the op node and call that made it.

    Each ref has at most one producing call, so rows link a value to its
    producer by the ref itself, whichever variable shows it.
    """

    def __init__(self, tables: dict[str, NodeTable]) -> None:
        self.nodes = list(tables)
        refs, nodes, calls = [_NO_KEYS], [np.empty(0, dtype=np.intp)], [_NO_KEYS]
        for position, table in enumerate(tables.values()):
            for edge, (values, present) in table.edges.items():
                if edge.direction == OUT:
                    refs.append(values[present])
                    nodes.append(np.full(int(present.sum()), position, dtype=np.intp))
                    calls.append(table.calls[present])
        all_refs = np.concatenate(refs)
        order = stable_order(all_refs)
        self.refs, self.node_of, self.call_of = all_refs[order], np.concatenate(nodes)[order], \
            np.concatenate(calls)[order]

    def find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(made mask, position in ``self.refs``) of these ref keys."""
        if not self.refs.size:
            return np.zeros(values.size, dtype=bool), np.zeros(values.size, dtype=np.intp)
        at = np.minimum(np.searchsorted(self.refs, values), self.refs.size - 1)
        return self.refs[at] == values, at

    def made_by(self, values: np.ndarray, node: str, calls: np.ndarray) -> np.ndarray:
        """Whether each value was made by the call (key) beside it, of op node ``node``."""
        made, at = self.find(values)
        mine: np.ndarray = made & (self.node_of[at] == self.nodes.index(node)) & (self.call_of[at] == calls)
        return mine

    def made_on_row(self, block: Block, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Whether each of these values (at these rows of ``block``) was made by a call on its row."""
        made, at = self.find(values)
        result = np.zeros(rows.size, dtype=bool)
        for position in unique_keys(self.node_of[at[made]]).tolist():
            node = self.nodes[position]
            if node in block:
                keys, present = block[node]
                mine = made & (self.node_of[at] == position)
                result[mine] = present[rows[mine]] & (keys[rows[mine]] == self.call_of[at[mine]])
        return result


def key_blocks(graph: FrameGraph, index: CallIndex, how: Literal["outer", "inner"]) -> list[Block]:
    """The blocks of rows of the table: one per op node holding last calls, then what no row holds."""
    tables = {node: NodeTable(graph, node, index) for node in graph.ops}
    producers = Producers(tables)
    read = _read_refs(tables)
    order = graph.topological_ops()
    blocks = []
    for node in order:
        block = tables[node].unread_rows(read)
        if not next(iter(block.values()))[0].size:
            continue
        grew = True
        while grew:  # a producer found on a later pass may hold the value an earlier one made
            grew = False
            for producer in reversed(order):
                if producer != node:
                    block, added = _add_producer(graph, block, producer, tables[producer], producers)
                    grew |= added
        blocks.append(_complete(graph, node, block, producers) if how == "inner" else block)
    return blocks + (_left_out(graph, tables, blocks) if how == "outer" else [])


def _read_refs(tables: dict[str, NodeTable]) -> np.ndarray:
    """Sorted keys of the refs that a call of the frame reads."""
    found = [values[present] for table in tables.values() for edge, (values, present) in table.edges.items()
             if edge.direction == IN]
    return unique_keys(np.concatenate(found)) if found else _NO_KEYS


def _add_producer(graph: FrameGraph, block: Block, producer: str, table: NodeTable,
                  producers: Producers) -> tuple[Block, bool]:
    """Put on each row the call of ``producer`` that made one of its values, when it agrees with the row."""
    size = next(iter(block.values()))[0].size
    match = np.full(size, -1, dtype=np.intp)
    absent = ~block[producer][1] if producer in block else np.ones(size, dtype=bool)
    made_refs, made_rows = table.made
    if not made_refs.size or not absent.any():
        return block, False
    for name in sorted(n for n in block if n in graph.vars):
        values, present = block[name]
        todo = np.flatnonzero((match < 0) & present & absent)
        if todo.size and made_refs.size:
            at = np.minimum(search(made_refs, values[todo]), made_refs.size - 1)
            hit = made_refs[at] == values[todo]
            match[todo[hit]] = made_rows[at[hit]]
    rows = np.flatnonzero(match >= 0)
    for name, (values, present) in table.block.items():  # a call that disagrees with its row is not on it...
        if name in block and rows.size:
            mine, mine_present = block[name]
            theirs = match[rows]
            clash = mine_present[rows] & present[theirs] & (mine[rows] != values[theirs])
            if name in graph.vars and clash.any():  # the row's value came along another edge of the call
                clash[clash] = ~table.agrees(name, mine[rows[clash]], theirs[clash], producers, producer)
            if name in graph.vars and clash.any():
                # ...unless a call on the row made the row's value: the row shows what its
                # own computation read there (``a`` of ``f(a=inc(a))``).
                clash[clash] = ~producers.made_on_row(block, mine[rows[clash]], rows[clash])
            rows = rows[~clash]
    if not rows.size:
        return block, False
    result = dict(block)
    for name, (values, present) in table.block.items():
        mine, mine_present = block.get(name, (np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=bool)))
        fill = rows[~mine_present[rows] & present[match[rows]]]
        mine, mine_present = mine.copy(), mine_present.copy()
        mine[fill], mine_present[fill] = values[match[fill]], True
        result[name] = (mine, mine_present)
    return result, True


def _complete(graph: FrameGraph, node: str, block: Block, producers: Producers) -> Block:
    """The rows that are whole computations: they end at a last op of the frame, and each value
    a call of the frame made has that call on the row."""
    if any(graph.edges_of(e.var, IN) for e in graph.edges_of(node, OUT)):
        return {}
    size = next(iter(block.values()))[0].size
    keep = np.ones(size, dtype=bool)
    for var in graph.vars:
        if var in block:
            values, present = block[var]
            rows = np.flatnonzero(present)
            made, _ = producers.find(values[rows])
            keep[rows[made]] &= producers.made_on_row(block, values[rows[made]], rows[made])
    return {name: (values[keep], present[keep]) for name, (values, present) in block.items()}


def _left_out(graph: FrameGraph, tables: dict[str, NodeTable], blocks: list[Block]) -> list[Block]:
    """Rows for the calls and refs that no row holds."""
    extra: list[Block] = []
    for node, table in tables.items():
        shown = _shown(blocks, node)
        missing = ~member(table.calls, shown)
        if missing.any():
            extra.append(table.rows_of_calls(missing))
    for var in sorted(graph.vars):
        refs = graph.vars[var].keys
        refs = refs[~member(refs, _shown(blocks + extra, var))]
        if refs.size:
            extra.append({var: (refs, np.ones(refs.size, dtype=bool))})
    return extra


def _shown(blocks: list[Block], name: str) -> np.ndarray:
    found = [values[present] for block in blocks if name in block for values, present in [block[name]]]
    return unique_keys(np.concatenate(found)) if found else _NO_KEYS


class KeyTable:
    """The rows of a table as key columns: ``table[name]`` is (uint64 keys, present mask)."""

    def __init__(self, columns: dict[str, Column], size: int) -> None:
        self.columns = list(columns)
        self._data = columns
        self._size = size

    @classmethod
    def of_blocks(cls, blocks: list[Block], columns: list[str]) -> KeyTable:
        """The blocks one under the other, in this column order (a block's missing column: not present)."""
        blocks = [b for b in blocks if b and next(iter(b.values()))[0].size]
        sizes = [next(iter(b.values()))[0].size for b in blocks]
        data = {}
        for name in columns:
            values = [b[name][0] if name in b else np.zeros(n, dtype=np.uint64)
                      for b, n in zip(blocks, sizes, strict=True)]
            present = [b[name][1] if name in b else np.zeros(n, dtype=bool)
                       for b, n in zip(blocks, sizes, strict=True)]
            data[name] = (np.concatenate(values) if values else _NO_KEYS,
                          np.concatenate(present) if present else np.zeros(0, dtype=bool))
        return cls(data, sum(sizes))

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, name: str) -> Column:
        return self._data[name]

    def rows(self, mask: np.ndarray) -> KeyTable:
        """The rows where ``mask`` is True."""
        return KeyTable({n: (v[mask], p[mask]) for n, (v, p) in self._data.items()}, int(mask.sum()))
