"""Reading the graph of stored calls from a store's snapshot: which calls made or used a value.

A snapshot (``MetadataStore.snapshot``) holds every call, ref and edge as
packed columns; these helpers turn its edges into (call hid, value cid)
pairs for checks and repairs, which need the whole graph at once.
"""

from __future__ import annotations

from typing import Iterable

from memostore.backends.base import Snapshot


def calls_with_value(snapshot: Snapshot, cids: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
    """cid -> (call hid, whether the value is the call's output) for every edge holding one of ``cids``."""
    wanted = set(cids)
    found: dict[str, list[tuple[str, bool]]] = {}
    for call_hid, cid, is_out in snapshot_edges(snapshot):
        if cid in wanted and call_hid is not None:
            found.setdefault(cid, []).append((call_hid, is_out))
    return found


def snapshot_edges(snapshot: Snapshot) -> list[tuple[str | None, str | None, bool]]:
    """(call hid, value cid, is output) of every edge of a snapshot; None where the edge's call
    or ref is not stored (a damaged store)."""
    call_hids = _hexes(snapshot.call_hids)
    calls = dict(zip(_ints(snapshot.call_ids), call_hids, strict=True))
    ref_cids = dict(zip(_ints(snapshot.ref_ids), _hexes(snapshot.ref_cids), strict=True))
    return [(calls.get(call_id), ref_cids.get(ref_id), kind % 2 == 1) for call_id, ref_id, kind in zip(
        _ints(snapshot.edge_calls), _ints(snapshot.edge_refs), _ints(snapshot.edge_kinds), strict=True)]


def _hexes(joined: bytes) -> list[str]:
    """Hex ids from concatenated 16-byte ids."""
    return [joined[i:i + 16].hex() for i in range(0, len(joined), 16)]


def _ints(joined: str | range) -> list[int] | range:
    if isinstance(joined, range):
        return joined
    return [int(part) for part in joined.split(",")] if joined else []
