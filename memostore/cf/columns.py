"""The calls and edges a frame has fetched, as numpy columns.

Frames hold up to millions of calls, so expansion and tables work on arrays,
not on a Python object per call: ids become ``uint64`` keys (the first 64 bits
of the 128-bit hash), and a table's ``Call`` objects are read from the store
only when used. A small request probes the store by id; a request for a large
part of the store reads the calls and edges tables whole (``snapshot``), which
costs a fraction of a microsecond per row instead of several per probe.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from memostore.backends.base import CallRecords, Snapshot
from memostore.cf.hidset import (
    MASK_FROM_FRACTION,
    RAW,
    HidSet,
    Runs,
    checked_raw_keys_and_order,
    checked_words_and_order,
    hex_list,
    in_order,
    is_in,
    keys_of_hex,
    member,
    search,
    unique_keys,
    unique_order,
)
from memostore.errors import NotStoredError
from memostore.model import Call, LazyCall, input_ref_hid

IN, OUT = "in", "out"
SEPARATOR = "\x1f"
# Read the tables whole when one request names this many calls or refs, and
# at least this fraction of the store's calls: then a scan beats probing, and
# the snapshot holds at most 4 times what the frame needs.
SNAPSHOT_MIN_IDS = 1_000
SNAPSHOT_MIN_FRACTION = 0.25
# Integer ids up to this many times the row count are looked up by a table indexed by id.
DENSE_IDS_FACTOR = 4

_EMPTY_KEYS = np.empty(0, dtype=np.uint64)


class ColumnReader(Protocol):
    """The reads a frame's columns come from (a subset of ``GraphReader``)."""

    def call_records(self, call_hids: Iterable[str]) -> CallRecords: ...

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]: ...

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]: ...

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]: ...

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]: ...

    def call_count(self) -> int: ...

    def op_call_count(self, op_name: str) -> int: ...

    def snapshot(self) -> Snapshot: ...


class Vocabulary:
    """Small sets of names (ops, versions, edge names) as integer codes."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self.names)
            self.names.append(name)
        return code

    def find(self, name: str) -> int | None:
        return self._codes.get(name)

    def codes(self, names: Sequence[str]) -> np.ndarray:
        import pandas as pd

        if not len(names):
            return np.empty(0, dtype=np.int32)
        local, uniques = pd.factorize(np.asarray(names, dtype=object))
        return np.array([self.code(u) for u in uniques], dtype=np.int32)[local]  # type: ignore[no-any-return]


class CallIndex:
    """Calls and edges fetched so far, shared by frames derived from one another.

    It holds what expansion and tables need: each call's op, version and
    status, and each edge's call, ref, content id, direction and name. Calls
    are sorted by key and edges by call key, so a call's edges are one slice.
    The rest of a Call (timings, errors, output order) is read from the store
    when a table's Call is first used (``StoredCall``).
    """

    def __init__(self, reader: ColumnReader) -> None:
        self.reader = reader
        self.ops, self.versions, self.names = Vocabulary(), Vocabulary(), Vocabulary()
        self.c_key = _EMPTY_KEYS
        self.c_raw = np.empty(0, dtype=RAW)
        self.c_op = self.c_version = np.empty(0, dtype=np.int32)
        self.c_failed = np.empty(0, dtype=bool)
        self.e_call = self.e_ref = _EMPTY_KEYS
        self.e_out = np.empty(0, dtype=bool)
        self.e_name = np.empty(0, dtype=np.int32)
        self.e_ref_raw = self.e_cid_raw = np.empty(0, dtype=RAW)
        self.complete = False  # the whole store is loaded: no more reads
        self._probed: dict[str, set[int]] = {IN: set(), OUT: set()}
        self._probe_rows: list[tuple[int, int, int, bool, str]] = []  # (call key, name, ref key, is out, call hid)
        self._stored_calls: int | None = None
        self._extra_cids: dict[str, str] = {}
        # Edge rows sorted by ref key, and each edge's ref among the distinct ones (set with the edges).
        self._ref_order = self.e_ref_run = np.empty(0, dtype=np.intp)
        self._call_runs = self._ref_runs = Runs.of(_EMPTY_KEYS)  # the edges of each call, of each ref

    def _read_whole(self, count: int) -> bool:
        """Read the store whole if a request for ``count`` ids is worth it; whether it is now complete."""
        if self.complete or count < SNAPSHOT_MIN_IDS:
            return self.complete
        if self._stored_calls is None:
            self._stored_calls = self.reader.call_count()
        if count < SNAPSHOT_MIN_FRACTION * self._stored_calls:
            return False
        self._load_snapshot()
        return True

    # --- fetching -------------------------------------------------------------------

    def fetch(self, call_hids: Iterable[str]) -> np.ndarray:
        """Fetch the calls not fetched yet; returns the sorted keys of those stored."""
        hids = HidSet.of(call_hids)
        known = member(hids.keys, self.c_key)
        if not known.all() and not self.complete:
            missing = hex_list(hids.raw[~known])
            if not self._read_whole(len(missing)):
                self._add_records(self.reader.call_records(missing))
            known = member(hids.keys, self.c_key)
        return hids.keys[known]  # type: ignore[no-any-return]

    def calls_of_op(self, op_name: str) -> np.ndarray:
        """Sorted keys of every stored call of this op (all versions), fetched."""
        if not self.complete and not self._read_whole(self.reader.op_call_count(op_name)):
            return self.fetch(self.reader.call_hids_of_ops([op_name]))
        code = self.ops.find(op_name)
        return self.c_key[self.c_op == code] if code is not None else _EMPTY_KEYS

    def _load_snapshot(self) -> None:
        """Take in the whole store. Ids stay 16-byte binary, as the store gives them: keys are a
        view of their bytes."""
        snap = self.reader.snapshot()
        call_raw = np.frombuffer(snap.call_hids, dtype=RAW)
        ops, versions = _lookup([(vid, self.ops.code(op), self.versions.code(version))
                                 for vid, op, version in snap.versions], _ints(snap.call_versions), 2)
        keys, call_order = checked_words_and_order(call_raw.view(">u8"))
        self._set_calls(call_raw, ops, versions, _flags(snap.call_failed), keys, call_order)
        # Edges point at calls and refs by integer id: find each id's row.
        call_at, known = _rows_of(snap.call_ids, _ints(snap.edge_calls))
        ref_at, known_ref = _rows_of(snap.ref_ids, _ints(snap.edge_refs))
        # Only edges of the calls read: a reader that is not one transaction may have more.
        rows = np.flatnonzero(known & known_ref)
        rows = rows[_by_call_order(call_at[rows], call_order)]  # by call key, each call's in edge order
        edge_calls = keys[call_at[rows]]
        refs = ref_at[rows]
        kinds = _ints(snap.edge_kinds)[rows]
        [names] = _lookup([(nid, self.names.code(name)) for nid, name in snap.names], kinds // 2)
        ref_raw = np.frombuffer(snap.ref_hids, dtype=RAW)[refs]
        self._set_edges(edge_calls, ref_raw, np.frombuffer(snap.ref_cids, dtype=RAW)[refs], kinds % 2 == 1, names,
                        checked_words_and_order(ref_raw.view(">u8")))
        self.complete = True

    def _add_records(self, records: CallRecords) -> None:
        if not records.calls:
            return
        rows, edges = records.calls, records.edges
        self._set_calls(
            np.concatenate([self.c_raw, _raw_of_strings([r[0] for r in rows])]),
            np.concatenate([self.c_op, self.ops.codes([r[2] for r in rows])]),
            np.concatenate([self.c_version, self.versions.codes([r[3] for r in rows])]),
            np.concatenate([self.c_failed, np.array([r[4] == "failed" for r in rows], dtype=bool)]))
        self._set_edges(
            np.concatenate([self.e_call, keys_of_hex("".join(e[0] for e in edges))]),
            np.concatenate([self.e_ref_raw, _raw_of_strings([e[3] for e in edges])]),
            np.concatenate([self.e_cid_raw, _raw_of_strings([e[4] for e in edges])]),
            np.concatenate([self.e_out, np.array([e[1] == OUT for e in edges], dtype=bool)]),
            np.concatenate([self.e_name, self.names.codes([e[2] for e in edges])]))

    def _set_calls(self, raw: np.ndarray, ops: np.ndarray, versions: np.ndarray, failed: np.ndarray,
                   keys: np.ndarray | None = None, order: np.ndarray | None = None) -> None:
        """The call columns; ``keys`` (of the ``RAW`` hids) and the order that sorts them when known already."""
        if keys is None or order is None:
            keys, first = unique_order(checked_raw_keys_and_order(raw)[0] if keys is None else keys)
        else:
            sorted_keys = keys[order]
            new = np.ones(sorted_keys.size, dtype=bool)
            np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
            keys, first = sorted_keys[new], order[new]
        self.c_key, self.c_raw = keys, raw[first]
        self.c_op, self.c_version, self.c_failed = ops[first], versions[first], failed[first]

    def _set_edges(self, calls: np.ndarray, ref_raw: np.ndarray, cid_raw: np.ndarray, out: np.ndarray,
                   names: np.ndarray, ref_keys: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """The edge columns (``RAW`` ref hids and cids); ``ref_keys`` (keys of ``ref_raw`` and their
        order) when known already (then the edges come sorted by call key)."""
        if ref_keys is None and calls.size and not (calls[1:] >= calls[:-1]).all():
            order = np.argsort(calls, kind="stable")
            calls, ref_raw, cid_raw, out, names = calls[order], ref_raw[order], cid_raw[order], out[order], names[order]
        self.e_call, self.e_out, self.e_name, self.e_ref_raw, self.e_cid_raw = calls, out, names, ref_raw, cid_raw
        self.e_ref, self._ref_order = checked_raw_keys_and_order(ref_raw) if ref_keys is None else ref_keys
        self._call_runs, self._ref_runs = Runs.of(self.e_call), Runs.of(self.e_ref[self._ref_order])
        self.e_ref_run = np.empty(self.e_ref.size, dtype=np.intp)  # each edge's ref among the distinct ones
        self.e_ref_run[self._ref_order] = self._ref_runs.run_of_each()

    # --- reading ---------------------------------------------------------------------

    def op_codes(self, call_keys: np.ndarray) -> np.ndarray:
        """Op codes of fetched calls."""
        return self.c_op[search(self.c_key, call_keys)]  # type: ignore[no-any-return]

    def call_set(self, call_keys: np.ndarray) -> HidSet:
        """The HidSet of fetched calls (sorted unique keys)."""
        return HidSet(call_keys, self.c_raw[search(self.c_key, call_keys)])

    def edge_rows(self, call_keys: np.ndarray) -> np.ndarray:
        """Indices of the edges of these (sorted unique, fetched) calls, in edge order."""
        return self._call_runs.positions(call_keys)

    def ref_edges(self, refs: HidSet, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(call keys, edge name codes, ref keys) of the stored edges that consumed (IN) or produced (OUT)
        these refs."""
        is_out = direction == OUT
        rows = in_order(self.rows_of_refs(refs.keys), self.e_call.size)  # by call: callers search by call
        rows = rows[self.e_out[rows] == is_out]
        found = [(self.e_call[rows], self.e_name[rows], self.e_ref[rows])]
        if not self.complete:
            probed = self._probed[direction]
            skip = is_in(refs.keys, np.fromiter(probed, dtype=np.uint64, count=len(probed)))
            if is_out:  # a ref on a fetched output edge has its one producer fetched already
                skip |= member(refs.keys, unique_keys(self.e_ref[self.e_out]))
            ask = hex_list(refs.raw[~skip])
            if self._read_whole(len(ask)):
                return self.ref_edges(refs, direction)
            if ask:
                probed.update(refs.keys[~skip].tolist())
                for call_hid, name, ref_hid in self.reader.ref_edge_rows(ask, direction):
                    self._probe_rows.append((int(keys_of_hex(call_hid)[0]), self.names.code(name),
                                             int(keys_of_hex(ref_hid)[0]), is_out, call_hid))
            probes = [r for r in self._probe_rows if r[3] == is_out]
            if probes:
                probe_refs = np.array([r[2] for r in probes], dtype=np.uint64)
                hit = member(probe_refs, refs.keys)
                self.fetch(r[4] for r, h in zip(probes, hit.tolist(), strict=True) if h)  # found calls are fetched
                found.append((np.array([r[0] for r in probes], dtype=np.uint64)[hit],
                              np.array([r[1] for r in probes], dtype=np.int32)[hit], probe_refs[hit]))
        if len(found) == 1:  # straight from the edge table: (call, direction, name) is its key
            return found[0]
        calls, names, ref_keys = (np.concatenate(parts) for parts in zip(*found, strict=True))
        _, first = np.unique(np.stack([calls, names.astype(np.uint64)]), axis=1, return_index=True)
        return calls[first], names[first], ref_keys[first]

    def ref_set(self, rows: np.ndarray) -> HidSet:
        """The refs on these edge rows. Each edge knows its ref's place among the distinct refs, so
        a large set is a mask over those places, not a sort of its keys."""
        runs = self._ref_runs
        if rows.size * MASK_FROM_FRACTION < runs.keys.size:
            return HidSet.from_arrays(self.e_ref_raw[rows], self.e_ref[rows])
        chosen = np.zeros(runs.keys.size, dtype=bool)
        chosen[self.e_ref_run[rows]] = True
        places = np.flatnonzero(chosen)
        return HidSet(runs.keys[places], self.e_ref_raw[self._ref_order[runs.starts[places]]])

    def rows_of_refs(self, ref_keys: np.ndarray) -> np.ndarray:
        """Edge rows whose ref is one of these (sorted unique) keys."""
        return self._ref_order[self._ref_runs.positions(ref_keys)]  # type: ignore[no-any-return]

    def cids_of_refs(self, keys: np.ndarray, hids: HidSet) -> tuple[np.ndarray, np.ndarray]:
        """(``RAW`` cids, known mask) of refs given by keys, all in ``hids``.

        Refs on fetched edges are looked up in the columns; the few others (a
        frame made from a lone Ref) are asked of the store once.
        """
        cids = np.zeros(keys.size, dtype=RAW)
        run, found = self._ref_runs.find(keys)
        cids[found] = self.e_cid_raw[self._ref_order[self._ref_runs.starts[run[found]]]]
        if found.all():
            return cids, found
        others = hex_list(hids.raw_of(keys[~found]))
        ask = sorted({h for h in others if h not in self._extra_cids})
        if ask:
            self._extra_cids.update(self.reader.ref_cids(ask))
        known = found.copy()
        known[~found] = [h in self._extra_cids for h in others]
        cids[~found] = _raw_of_strings([self._extra_cids.get(h, "00" * 16) for h in others])
        return cids, known

    def passed_by_hand(self, refs: HidSet) -> np.ndarray:
        """Which of these refs are values passed to an op by hand (no call made them), aligned with ``refs.keys``.

        Such a ref's hid depends on its content alone, so equal constants given
        to unrelated ops share it; frames keep them apart (one variable per op
        and parameter). A ref on a fetched output edge was made by a call; the
        others are checked against the formula, so the output of a dropped call
        still counts as made by one.
        """
        rows = self.rows_of_refs(refs.keys)
        produced = member(refs.keys, unique_keys(self.e_ref[rows[self.e_out[rows]]]))
        result = np.zeros(refs.keys.size, dtype=bool)
        if produced.all():
            return result
        cids, known = self.cids_of_refs(refs.keys[~produced], refs)
        hids = hex_list(refs.raw[~produced])
        result[~produced] = [ok and input_ref_hid(cid) == hid
                             for ok, cid, hid in zip(known.tolist(), hex_list(cids), hids, strict=True)]
        return result

    def calls(self, call_keys: np.ndarray) -> np.ndarray:
        """A Call for each of these (sorted unique) fetched call keys, as an object array.

        The Calls are ``StoredCall``s: each is read from the store, with the
        ``CALL_BATCH`` Calls beside it, when first used.
        """
        at = search(self.c_key, call_keys)
        versions = np.array(self.versions.names, dtype=object)[self.c_version[at]] if at.size else at
        batch = CallBatch(self.reader, self.c_raw[at], self.ops.names, self.c_op[at], versions,
                          self.c_failed[at])
        return np.fromiter(map(StoredCall, itertools.repeat(batch), range(call_keys.size)), dtype=object,
                           count=call_keys.size)


CALL_BATCH = 1_024
_KNOWN_FIELDS = frozenset({"hid", "op", "version", "status"})


class CallBatch:
    """The Calls of one table column, read from the store ``CALL_BATCH`` at a time.

    It knows each call's hid, op, version and status from the index, which is
    what a Call's repr and a table's display need, so showing a table reads
    nothing from the store.
    """

    __slots__ = ("reader", "hids", "op_names", "ops", "versions", "failed", "_built")

    def __init__(self, reader: ColumnReader, hids: np.ndarray, op_names: list[str], ops: np.ndarray,
                 versions: np.ndarray, failed: np.ndarray) -> None:
        self.reader = reader
        self.hids = hids  # RAW: hex is made for the Calls looked at
        self.op_names, self.ops, self.versions, self.failed = op_names, ops, versions, failed
        self._built: dict[int, dict[str, Call]] = {}

    def known(self, name: str, position: int) -> Any:
        """The field ``name`` (hid, op, version or status) of the call at ``position``."""
        if name == "hid":
            return self.hid(position)
        if name == "op":
            return self.op_names[self.ops[position]]
        if name == "version":
            return self.versions[position]
        return "failed" if self.failed[position] else "ok"

    def hid(self, position: int) -> str:
        """The hid of the call at ``position``."""
        return self.hids[position:position + 1].tobytes().hex()

    def call(self, position: int) -> Call:
        """The Call at this position, with its Refs, timings and error."""
        chunk = position // CALL_BATCH
        built = self._built.get(chunk)
        if built is None:
            hids = hex_list(self.hids[chunk * CALL_BATCH:(chunk + 1) * CALL_BATCH])
            built = self._built[chunk] = {c.hid: c for c in self.reader.calls_by_hids(hids)}
        hid = self.hid(position)
        if hid not in built:
            raise NotStoredError(f"call {hid} was deleted from the store after this table was made")
        return built[hid]


class StoredCall(LazyCall):
    """A Call in a frame's table, read from the store when first used.

    A table over a million calls would otherwise build a million Calls, each
    with its Refs and dicts, before the user looks at any. ``hid``, ``op``,
    ``version`` and ``status`` are known up front (``repr``, ``==`` and
    ``drop_calls`` need only those); any other field reads this Call and its
    batch. Pickling gives a plain Call.
    """

    __slots__ = ()

    def __init__(self, batch: CallBatch, position: int) -> None:  # fields come from __getattr__
        self._batch = batch
        self._position = position

    def __getattr__(self, name: str) -> Any:
        if name not in Call.__slots__:
            raise AttributeError(name)
        if name in _KNOWN_FIELDS:
            value = self._batch.known(name, self._position)
            setattr(self, name, value)
            return value
        return self._fill(name)


def _raw_of_strings(hids: list[str]) -> np.ndarray:
    """The ``RAW`` column of hex strings."""
    return np.frombuffer(bytes.fromhex("".join(hids)), dtype=RAW)


def _ints(joined: str) -> np.ndarray:
    """An int64 column of comma-separated decimal ids."""
    if not joined:
        return np.empty(0, dtype=np.int64)
    return np.fromstring(joined, dtype=np.int64, sep=",")


def _flags(joined: str) -> np.ndarray:
    """A bool column of ``0``/``1`` characters."""
    flags: np.ndarray = np.frombuffer(joined.encode("ascii"), dtype=np.uint8) == ord("1")
    return flags


def _rows_of(joined_ids: str | range, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each wanted id in a snapshot's ids, whether it is there)."""
    if isinstance(joined_ids, range):  # ids without gaps: the row is the id's offset
        at = wanted - joined_ids.start
        known = (at >= 0) & (at < len(joined_ids))
        at[~known] = 0  # (ndarray.clip is several times slower than a comparison)
        return at, known
    ids = _ints(joined_ids)
    if not ids.size:
        return np.zeros(wanted.size, dtype=np.intp), np.zeros(wanted.size, dtype=bool)
    low, high = int(ids.min()), int(ids.max())
    if low >= 0 and high < DENSE_IDS_FACTOR * ids.size + 1_024:  # row ids, few gaps: one lookup table
        row_of = np.full(high + 2, -1, dtype=np.intp)
        row_of[ids] = np.arange(ids.size)
        at = row_of[np.minimum(np.maximum(wanted, -1), high + 1)]  # unknown ids land on the -1 at high + 1
        return np.maximum(at, 0), at >= 0
    if (ids[1:] > ids[:-1]).all():  # a snapshot lists rows in id order
        at = search(ids, wanted).clip(0, ids.size - 1)
        return at, ids[at] == wanted
    order = np.argsort(ids, kind="stable")
    at = np.searchsorted(ids[order], wanted).clip(0, ids.size - 1)
    return order[at], ids[order][at] == wanted


def _by_call_order(edge_call_rows: np.ndarray, call_order: np.ndarray) -> np.ndarray:
    """The order that puts edges (given by their call's row) in ``call_order``, each call's
    edges in their order. Edges listed by call, as a snapshot lists them, need no sort."""
    if edge_call_rows.size and not (edge_call_rows[1:] >= edge_call_rows[:-1]).all():
        rank = np.empty(call_order.size, dtype=np.intp)
        rank[call_order] = np.arange(call_order.size)
        return np.argsort(rank[edge_call_rows], kind="stable")
    counts = np.bincount(edge_call_rows, minlength=call_order.size)
    starts = np.cumsum(counts) - counts  # where each call's edges begin, in the edges given
    sorted_counts = counts[call_order]
    before = np.cumsum(sorted_counts) - sorted_counts  # where they begin once in call order
    return np.repeat(starts[call_order] - before, sorted_counts) + np.arange(edge_call_rows.size)


def _lookup(table: list[tuple[int, ...]], ids: np.ndarray, width: int = 1) -> list[np.ndarray]:
    """The ``width`` int32 columns of ``table`` (rows of id, codes...) for each of ``ids``."""
    if not table:
        return [np.zeros(ids.size, dtype=np.int32) for _ in range(width)]
    columns = np.array(sorted(table), dtype=np.int64).T
    at = np.minimum(np.searchsorted(columns[0], ids), columns.shape[1] - 1)
    return [column[at].astype(np.int32) for column in columns[1:]]
