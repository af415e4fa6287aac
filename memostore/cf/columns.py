"""The calls and edges a frame has fetched, as numpy columns.

Frames hold up to millions of calls, so expansion and tables work on arrays,
not on a Python object per call: ids become ``uint64`` keys (the first 64 bits
of the 128-bit hash), and ``Call`` objects are built only for the calls a
table shows. A small request probes the store by id; a request for a large
part of the store reads the calls and edges tables whole (``snapshot``), which
costs a fraction of a microsecond per row instead of several per probe.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

import numpy as np

from memostore.backends.base import CallRecords, Snapshot
from memostore.model import Call, CallError, Ref

IN, OUT = "in", "out"
HEX_CHARS = 32
SEPARATOR = "\x1f"
# Read the tables whole when one request names this many calls or refs, and
# at least this fraction of the store's calls: then a scan beats probing, and
# the snapshot holds at most 4 times what the frame needs.
SNAPSHOT_MIN_IDS = 1_000
SNAPSHOT_MIN_FRACTION = 0.25

_CALL_ROW = np.dtype([("hid", "S32"), ("cid", "S32"), ("status", "S1"), ("multi", "S1")])
_EDGE_ROW = np.dtype([("call", "S32"), ("ref", "S32"), ("cid", "S32"), ("direction", "S1"), ("position", "S4")])
_EMPTY_KEYS = np.empty(0, dtype=np.uint64)


class ColumnReader(Protocol):
    """The reads a frame's columns come from (a subset of ``GraphReader``)."""

    def call_records(self, call_hids: Iterable[str]) -> CallRecords: ...

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]: ...

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]: ...

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]: ...

    def call_count(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def keys_of_hex(joined: str) -> np.ndarray:
    """uint64 keys of concatenated 32-character hex ids."""
    if not joined:
        return _EMPTY_KEYS
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8")[::2].astype(np.uint64)


def checked_keys(hexes: np.ndarray) -> np.ndarray:
    """Keys of an ``S32`` column, after checking that no two different ids share one."""
    words = np.frombuffer(bytes.fromhex(hexes.tobytes().decode()), dtype=">u8") if hexes.size else _EMPTY_KEYS
    high, low = words[::2].astype(np.uint64), words[1::2].astype(np.uint64)
    order = np.argsort(high, kind="stable")
    same_key = high[order][1:] == high[order][:-1]
    if (same_key & (low[order][1:] != low[order][:-1])).any():
        raise RuntimeError("two stored ids share their first 64 bits; this frame cannot tell them apart")
    return high


def hex_strings(column: np.ndarray) -> list[str]:
    """Python strings of an ``S32`` column."""
    joined = column.tobytes().decode("ascii")
    return [joined[i:i + HEX_CHARS] for i in range(0, len(joined), HEX_CHARS)]


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

    Calls are sorted by key; edges by (call key, direction, position), so a
    call's edges are one slice and its outputs come in the order returned.
    """

    def __init__(self, reader: ColumnReader) -> None:
        self.reader = reader
        self.ops, self.versions, self.names = Vocabulary(), Vocabulary(), Vocabulary()
        self.c_key = _EMPTY_KEYS
        self.c_hex = np.empty(0, dtype="S32")
        self.c_cid = np.empty(0, dtype="S32")
        self.c_op = self.c_version = np.empty(0, dtype=np.int32)
        self.c_failed = self.c_multi = np.empty(0, dtype=bool)
        self.c_started = self.c_duration = np.empty(0, dtype=np.float64)
        self.e_call = self.e_ref = _EMPTY_KEYS
        self.e_out = np.empty(0, dtype=bool)
        self.e_name = self.e_position = np.empty(0, dtype=np.int32)
        self.e_ref_hex = self.e_cid_hex = np.empty(0, dtype="S32")
        self.complete = False  # the whole store is loaded: no more reads
        self._probed: dict[str, set[int]] = {IN: set(), OUT: set()}
        self._probe_rows: list[tuple[int, int, int, bool, str]] = []  # (call key, name, ref key, is out, call hid)
        self._key_cache: dict[int, tuple[frozenset[str], np.ndarray]] = {}
        self._calls: dict[int, Call] = {}
        self._errors: dict[str, CallError] = {}
        self._stored_calls: int | None = None
        self._extra_cids: dict[str, str] = {}
        self._ref_order: np.ndarray | None = None
        self._sorted_refs = _EMPTY_KEYS

    # --- ids and keys ---------------------------------------------------------------

    def keys(self, hids: frozenset[str]) -> np.ndarray:
        """Sorted unique keys of a frame's hid set, computed once per set."""
        cached = self._key_cache.get(id(hids))
        if cached is not None and cached[0] is hids:
            return cached[1]
        keys = np.unique(keys_of_hex("".join(hids)))
        self._key_cache[id(hids)] = (hids, keys)
        return keys

    def _wants_snapshot(self, count: int) -> bool:
        if self.complete or count < SNAPSHOT_MIN_IDS:
            return False
        if self._stored_calls is None:
            self._stored_calls = self.reader.call_count()
        return count >= SNAPSHOT_MIN_FRACTION * self._stored_calls

    # --- fetching -------------------------------------------------------------------

    def fetch(self, call_hids: Iterable[str]) -> np.ndarray:
        """Fetch the calls not fetched yet; returns the sorted keys of those stored."""
        hids = list(call_hids)
        keys = keys_of_hex("".join(hids))
        known = member(keys, self.c_key)
        if not known.all() and not self.complete:
            missing = [h for h, k in zip(hids, known.tolist()) if not k]
            if self._wants_snapshot(len(missing)):
                self._load_snapshot()
            else:
                self._add_records(self.reader.call_records(missing))
            known = member(keys, self.c_key)
        return np.unique(keys[known])

    def _load_snapshot(self) -> None:
        snap = self.reader.snapshot()
        calls = np.frombuffer(snap.calls.encode("ascii"), dtype=_CALL_ROW)
        pairs = snap.op_versions.split(SEPARATOR) if calls.size else []
        edges = np.frombuffer(snap.edges.encode("ascii"), dtype=_EDGE_ROW)
        positions = np.frombuffer(bytes.fromhex(edges["position"].tobytes().decode()), dtype=">u2")
        self._set_calls(calls["hid"], calls["cid"], self.ops.codes(pairs[0::2]), self.versions.codes(pairs[1::2]),
                        calls["status"] == b"f", calls["multi"] == b"1",
                        _numbers(snap.started_at, calls.size), _numbers(snap.duration_s, calls.size))
        names = np.asarray(snap.edge_names.split(SEPARATOR) if edges.size else [], dtype=object)
        # Edges of calls stored after the calls were read are left out: the snapshot is of those calls.
        known = member(keys_of_hex(edges["call"].tobytes().decode()), self.c_key)
        edges, positions, names = edges[known], positions[known], names[known]
        self._set_edges(edges["call"], edges["ref"], edges["cid"], edges["direction"] == b"o",
                        self.names.codes(names), positions.astype(np.int32))
        self.complete = True

    def _add_records(self, records: CallRecords) -> None:
        if not records.calls:
            return
        rows = records.calls
        for row in rows:
            if row[8] is not None:
                self._errors[row[0]] = CallError(row[8], row[9] or "", row[10] or "")
        self._set_calls(
            np.concatenate([self.c_hex, np.array([r[0] for r in rows], dtype="S32")]),
            np.concatenate([self.c_cid, np.array([r[1] for r in rows], dtype="S32")]),
            np.concatenate([self.c_op, self.ops.codes([r[2] for r in rows])]),
            np.concatenate([self.c_version, self.versions.codes([r[3] for r in rows])]),
            np.concatenate([self.c_failed, np.array([r[4] == "failed" for r in rows], dtype=bool)]),
            np.concatenate([self.c_multi, np.array([bool(r[5]) for r in rows], dtype=bool)]),
            np.concatenate([self.c_started, np.array([r[6] for r in rows], dtype=np.float64)]),
            np.concatenate([self.c_duration, np.array([r[7] for r in rows], dtype=np.float64)]))
        edges = records.edges
        # Position within (call, direction): the rows come in that order.
        positions, previous, position = [], None, 0
        for call_hid, direction, *_ in edges:
            position = position + 1 if (call_hid, direction) == previous else 0
            previous = (call_hid, direction)
            positions.append(position)
        self._set_edges(
            np.concatenate([self._e_call_hex(), np.array([e[0] for e in edges], dtype="S32")]),
            np.concatenate([self.e_ref_hex, np.array([e[3] for e in edges], dtype="S32")]),
            np.concatenate([self.e_cid_hex, np.array([e[4] for e in edges], dtype="S32")]),
            np.concatenate([self.e_out, np.array([e[1] == OUT for e in edges], dtype=bool)]),
            np.concatenate([self.e_name, self.names.codes([e[2] for e in edges])]),
            np.concatenate([self.e_position, np.array(positions, dtype=np.int32)]))

    def _e_call_hex(self) -> np.ndarray:
        return self.c_hex[np.searchsorted(self.c_key, self.e_call)] if self.e_call.size else np.empty(0, "S32")

    def _set_calls(self, hexes: np.ndarray, cids: np.ndarray, ops: np.ndarray, versions: np.ndarray,
                   failed: np.ndarray, multi: np.ndarray, started: np.ndarray, duration: np.ndarray) -> None:
        keys = checked_keys(hexes)
        keys, first = np.unique(keys, return_index=True)
        self.c_key, self.c_hex, self.c_cid = keys, hexes[first], cids[first]
        self.c_op, self.c_version = ops[first], versions[first]
        self.c_failed, self.c_multi = failed[first], multi[first]
        self.c_started, self.c_duration = started[first], duration[first]

    def _set_edges(self, call_hex: np.ndarray, ref_hex: np.ndarray, cid_hex: np.ndarray, out: np.ndarray,
                   names: np.ndarray, positions: np.ndarray) -> None:
        calls = keys_of_hex(call_hex.tobytes().decode())
        order = np.lexsort((positions, out, calls))
        self.e_call, self.e_out, self.e_name, self.e_position = calls[order], out[order], names[order], positions[order]
        self.e_ref_hex, self.e_cid_hex = ref_hex[order], cid_hex[order]
        self.e_ref = checked_keys(self.e_ref_hex)
        self._ref_order = None

    # --- reading ---------------------------------------------------------------------

    def op_codes(self, call_keys: np.ndarray) -> np.ndarray:
        """Op codes of fetched calls."""
        return self.c_op[np.searchsorted(self.c_key, call_keys)]

    def call_hexes(self, call_keys: np.ndarray) -> list[str]:
        """Hids of fetched calls."""
        return hex_strings(self.c_hex[np.searchsorted(self.c_key, call_keys)])

    def edge_rows(self, call_keys: np.ndarray) -> np.ndarray:
        """Indices of the edges of these (sorted, fetched) calls, in edge order."""
        return np.flatnonzero(member(self.e_call, call_keys))

    def ref_edges(self, ref_keys: np.ndarray, ref_hexes: Iterable[str], direction: str) -> tuple[np.ndarray, np.ndarray]:
        """(call keys, edge name codes) of the stored edges that consumed (IN) or produced (OUT) these refs."""
        is_out = direction == OUT
        rows = self.rows_of_refs(ref_keys)
        rows = rows[self.e_out[rows] == is_out]
        found_calls, found_names = [self.e_call[rows]], [self.e_name[rows]]
        if not self.complete:
            shown = set(self.e_ref[self.e_out].tolist()) if is_out else set()
            probed = self._probed[direction]
            ask = [h for h, k in zip(ref_hexes, keys_of_hex("".join(ref_hexes)).tolist())
                   if k not in probed and k not in shown]
            if self._wants_snapshot(len(ask)):
                self._load_snapshot()
                return self.ref_edges(ref_keys, ref_hexes, direction)
            if ask:
                probed.update(keys_of_hex("".join(ask)).tolist())
                for call_hid, name, ref_hid in self.reader.ref_edge_rows(ask, direction):
                    self._probe_rows.append((int(keys_of_hex(call_hid)[0]), self.names.code(name),
                                             int(keys_of_hex(ref_hid)[0]), is_out, call_hid))
            probes = [r for r in self._probe_rows if r[3] == is_out]
            if probes:
                calls = np.array([r[0] for r in probes], dtype=np.uint64)
                names = np.array([r[1] for r in probes], dtype=np.int32)
                hit = member(np.array([r[2] for r in probes], dtype=np.uint64), ref_keys)
                self.fetch(r[4] for r, h in zip(probes, hit.tolist()) if h)  # found calls are fetched
                found_calls.append(calls[hit])
                found_names.append(names[hit])
        if len(found_calls) == 1:  # straight from the edge table: (call, direction, name) is its key
            return found_calls[0], found_names[0]
        calls, names = np.concatenate(found_calls), np.concatenate(found_names)
        unique = np.unique(np.stack([calls, names.astype(np.uint64)]), axis=1)
        return unique[0], unique[1].astype(np.int32)

    def _by_ref(self) -> tuple[np.ndarray, np.ndarray]:
        """Edge rows sorted by ref key, and the sorted ref keys."""
        if self._ref_order is None:
            self._ref_order = np.argsort(self.e_ref, kind="stable")
            self._sorted_refs = self.e_ref[self._ref_order]
        return self._ref_order, self._sorted_refs

    def rows_of_refs(self, ref_keys: np.ndarray) -> np.ndarray:
        """Edge rows whose ref is one of these (sorted unique) keys."""
        order, sorted_refs = self._by_ref()
        first = np.searchsorted(sorted_refs, ref_keys, side="left")
        counts = np.searchsorted(sorted_refs, ref_keys, side="right") - first
        starts = np.repeat(first - (np.cumsum(counts) - counts), counts)
        return order[starts + np.arange(int(counts.sum()))]

    def cids_of_keys(self, ref_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, cid column) for ref keys, from the fetched edges."""
        order, sorted_refs = self._by_ref()
        at = np.searchsorted(sorted_refs, ref_keys)
        at[at >= sorted_refs.size] = 0
        found = sorted_refs[at] == ref_keys if sorted_refs.size else np.zeros(ref_keys.size, dtype=bool)
        cids = self.e_cid_hex[order[at]] if sorted_refs.size else np.empty(ref_keys.size, "S32")
        return found, cids

    def cid_column(self, ref_hexes: list[str | None]) -> list[str | None]:
        """The cid of each ref hid in a table column (None stays None).

        Refs on fetched edges are looked up in the columns; the few others (a
        frame made from a lone Ref) are asked of the store once.
        """
        present = [h for h in ref_hexes if h is not None]
        found, cids = self.cids_of_keys(keys_of_hex("".join(present)))
        on_edges = found.tolist()
        missing = [h for h, ok in zip(present, on_edges) if not ok and h not in self._extra_cids]
        if missing:
            self._extra_cids.update(self.reader.ref_cids(missing))
        known = iter([c if ok else self._extra_cids.get(h) for h, c, ok in zip(present, hex_strings(cids), on_edges)])
        return [None if h is None else next(known) for h in ref_hexes]

    def calls(self, call_hexes: Iterable[str]) -> dict[str, Call]:
        """hid -> Call for these hids (fetched if needed), each built once."""
        keys = self.fetch(call_hexes)
        missing = np.array([k for k in keys.tolist() if k not in self._calls], dtype=np.uint64)
        if missing.size:
            self._build_calls(missing)
        return {call.hid: call for call in (self._calls[k] for k in keys.tolist())}

    def _build_calls(self, keys: np.ndarray) -> None:
        at = np.searchsorted(self.c_key, keys)
        hids, cids = hex_strings(self.c_hex[at]), hex_strings(self.c_cid[at])
        ops, versions = self.c_op[at].tolist(), self.c_version[at].tolist()
        failed, multi = self.c_failed[at].tolist(), self.c_multi[at].tolist()
        started, duration = self.c_started[at].tolist(), self.c_duration[at].tolist()
        # Edges are sorted by call key, like ``keys``: each call's edges are the next ``count`` rows.
        rows = np.flatnonzero(member(self.e_call, keys))
        counts = np.bincount(np.searchsorted(keys, self.e_call[rows]), minlength=keys.size).tolist()
        ref_hex, cid_hex = hex_strings(self.e_ref_hex[rows]), hex_strings(self.e_cid_hex[rows])
        out = self.e_out[rows].tolist()
        edge_names = [self.names.names[c] for c in self.e_name[rows].tolist()]
        needs_error = [hid for hid, bad in zip(hids, failed) if bad and hid not in self._errors]
        if needs_error:  # a snapshot has no error texts; failed calls are few
            for row in self.reader.call_records(needs_error).calls:
                if row[8] is not None:
                    self._errors[row[0]] = CallError(row[8], row[9] or "", row[10] or "")
        op_names, version_names, errors, built = self.ops.names, self.versions.names, self._errors, self._calls
        first = 0
        for i, key in enumerate(keys.tolist()):
            inputs: dict[str, Ref] = {}
            outputs: dict[str, Ref] = {}
            for j in range(first, first + counts[i]):
                (outputs if out[j] else inputs)[edge_names[j]] = Ref(cid_hex[j], ref_hex[j])
            first += counts[i]
            hid = hids[i]
            built[key] = Call(op_names[ops[i]], version_names[versions[i]], hid, cids[i], inputs, outputs,
                              "failed" if failed[i] else "ok", multi[i], started[i], duration[i], errors.get(hid))


def member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in the sorted unique array ``sorted_keys``."""
    if not sorted_keys.size or not values.size:
        return np.zeros(values.shape, dtype=bool)
    at = np.searchsorted(sorted_keys, values)
    at[at == sorted_keys.size] = 0
    return sorted_keys[at] == values  # type: ignore[no-any-return]


def _numbers(text: str, count: int) -> np.ndarray:
    if not count:
        return np.empty(0, dtype=np.float64)
    return np.array(text.split(","), dtype=np.float64)

