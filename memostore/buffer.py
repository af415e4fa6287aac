"""Pending writes, the read-through call cache, and the batched flush.

The call path asks ``find`` (cache, then pending calls, then one indexed
query) and hands new calls to ``record``. Nothing reaches the database until
``flush``, which writes every pending row in one transaction: large values
to the blob store first, so the metadata never names a blob that is not on
disk. A process killed before a flush loses only the unflushed calls.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable

from memostore.backends.base import BlobStore, MetadataStore, Snapshot, StoredOutputs, StoredValue, WriteBatch
from memostore.backends.schema import DIRECTION_IN, DIRECTION_OUT, HASH_CHARS
from memostore.errors import CorruptValueError, MemostoreError, NotStoredError
from memostore.hashing import content_id, tagged_digest
from memostore.marshal_format import decode as decode_plain
from memostore.model import Call
from memostore.serialization import (
    FORMAT_MARSHAL,
    FORMAT_PICKLE,
    USER_PREFIX,
    Parts,
    dumps,
    load_file,
    loads_checked,
)

CACHE_MAX_CALLS = 200_000  # stored calls remembered per process for fast hits
FLUSH_EVERY_CALLS = 10_000  # pending calls that trigger a flush mid-block
FLUSH_EVERY_BYTES = 256 * 2**20  # pending serialized bytes that trigger one


class SerializedValue:
    """A value and its bytes, ready to be written."""

    __slots__ = ("value", "format", "data")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.format, self.data = dumps(value)


class CallBuffer:
    """The write buffer and call cache in front of one metadata store."""

    def __init__(self, store: MetadataStore, blobs: BlobStore | None, blob_threshold_bytes: int,
                 allow_pickle: bool) -> None:
        self.store = store
        self.blobs = blobs
        self.blob_threshold_bytes = blob_threshold_bytes
        self.allow_pickle = allow_pickle
        self._lock = threading.RLock()
        self._cache: dict[str, StoredOutputs] = {}
        self._pending_calls: dict[str, Call] = {}
        self._pending_by_cid: dict[str, str] = {}
        self._pending_values: dict[str, SerializedValue] = {}
        self._pending_refs: dict[str, str] = {}
        self._pending_bytes = 0
        self._known_cids: set[str] = set()
        # (op, version) -> (source, dependencies JSON), for op versions used since the last flush.
        self._versions_used: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    # --- the call path ----------------------------------------------------

    def find(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """A call with this hid, else one with this cid: cache, pending, store."""
        found = self._find_here(call_hid, call_cid)
        if found is not None:
            return found
        found = self.store.find_outputs(call_hid, call_cid)
        if found is not None and found.call_hid == call_hid:
            self._remember(found)
        return found

    def find_many(self, keys: list[tuple[str, str]]) -> tuple[dict[str, StoredOutputs], set[str]]:
        """Batched ``find`` for (call hid, call cid) pairs, one store round trip.

        Returns call hid -> outputs for the hits, and the hids stored as failed.
        """
        found: dict[str, StoredOutputs] = {}
        ask: list[tuple[str, str]] = []
        for call_hid, call_cid in keys:
            local = self._find_here(call_hid, call_cid)
            if local is not None:
                found[call_hid] = local
            else:
                ask.append((call_hid, call_cid))
        by_hid, by_cid, failed = self.store.find_outputs_many([h for h, _ in ask], [c for _, c in ask])
        for call_hid, call_cid in ask:
            hit = by_hid.get(call_hid)
            if hit is not None:
                self._remember(hit)
                found[call_hid] = hit
            elif call_hid not in failed and call_cid in by_cid:
                found[call_hid] = by_cid[call_cid]
        with self._lock:  # worker threads may be recording nested calls meanwhile
            failed |= {hid for hid, call in self._pending_calls.items() if call.status == "failed"}
        return found, failed - found.keys()

    def _find_here(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """A hit without the store: the cache, then pending calls by hid, then by cid."""
        found = self._cache.get(call_hid)
        if found is not None:
            return found
        pending = self._pending_calls.get(call_hid)
        if pending is None:
            same_content = self._pending_by_cid.get(call_cid)
            pending = None if same_content is None else self._pending_calls.get(same_content)
        if pending is not None and pending.status == "ok":
            return _outputs_of(pending)
        return None

    def is_known(self, cid: str) -> bool:
        """Whether a value with this cid is pending or was written by this process."""
        return cid in self._known_cids or cid in self._pending_values

    def record(self, call: Call, new_values: dict[str, SerializedValue]) -> None:
        """Queue a call, its refs, and the values not stored yet; may flush."""
        with self._lock:
            for cid, serialized in new_values.items():
                if cid not in self._pending_values and cid not in self._known_cids:
                    self._pending_values[cid] = serialized
                    self._pending_bytes += len(serialized.data)
            for ref in (*call.inputs.values(), *call.outputs.values()):
                self._pending_refs[ref.hid] = ref.cid
            self._pending_calls[call.hid] = call
            self._pending_by_cid.setdefault(call.cid, call.hid)
            if len(self._pending_calls) >= FLUSH_EVERY_CALLS or self._pending_bytes >= FLUSH_EVERY_BYTES:
                self.flush()

    def note_version(self, op_name: str, version: str, source: str | None, dependencies: str | None) -> None:
        """Remember that this op version ran (or hit) in this process."""
        self._versions_used[(op_name, version)] = (source, dependencies)

    # --- flushing ---------------------------------------------------------

    @property
    def pending_calls(self) -> int:
        """How many calls wait for the next flush."""
        return len(self._pending_calls)

    def flush(self) -> None:
        """Write every pending row in one transaction."""
        with self._lock:
            if not self._pending_calls and not self._pending_values and not self._versions_used:
                return
            batch = self._batch()
            self.store.write(batch)
            for call in self._pending_calls.values():
                if call.status == "ok":
                    self._remember(_outputs_of(call))
            self._known_cids.update(self._pending_values)
            self._pending_calls.clear()
            self._pending_by_cid.clear()
            self._pending_values.clear()
            self._pending_refs.clear()
            self._versions_used.clear()
            self._pending_bytes = 0

    def _batch(self) -> WriteBatch:
        batch = WriteBatch()
        for cid, serialized in self._pending_values.items():
            data = serialized.data
            inline: bytes | None = None
            if self.blobs is not None and len(data) > self.blob_threshold_bytes:
                self.blobs.put(cid, data.buffers if isinstance(data, Parts) else data)
            else:
                inline = data.tobytes() if isinstance(data, Parts) else data
            batch.values.append({"cid": cid, "format": serialized.format,
                                 "size_bytes": len(serialized.data), "inline_data": inline})
        batch.refs = [{"hid": hid, "cid": cid} for hid, cid in self._pending_refs.items()]
        for call in self._pending_calls.values():
            batch.calls.append({
                "hid": call.hid, "cid": call.cid, "op": call.op, "version": call.version,
                "status": call.status, "multi_output": call.multi_output,
                "started_at": call.started_at, "duration_s": call.duration_s,
                "error_type": call.error.type if call.error else None,
                "error_message": call.error.message if call.error else None,
                "error_traceback": call.error.traceback if call.error else None,
            })
            for direction, refs in ((DIRECTION_IN, call.inputs), (DIRECTION_OUT, call.outputs)):
                for position, (name, ref) in enumerate(refs.items()):
                    batch.edges.append({"call_hid": call.hid, "direction": direction, "name": name,
                                        "position": position, "ref_hid": ref.hid, "ref_cid": ref.cid})
        now = time.time()
        batch.op_versions = [
            {"op": op, "version": version, "source": source, "dependencies": dependencies,
             "first_used": now, "last_used": now}
            for (op, version), (source, dependencies) in self._versions_used.items()
        ]
        return batch

    def _remember(self, found: StoredOutputs) -> None:
        if len(self._cache) >= CACHE_MAX_CALLS:
            # Forget the oldest tenth: dicts keep insertion order.
            for key in list(self._cache)[: CACHE_MAX_CALLS // 10]:
                del self._cache[key]
        self._cache[found.call_hid] = found

    def forget(self, call_hids: Iterable[str]) -> None:
        """Drop calls from the cache (after they were deleted from the store)."""
        for hid in call_hids:
            self._cache.pop(hid, None)

    def forget_values(self, cids: Iterable[str]) -> None:
        """Stop assuming these values are stored (after they were deleted)."""
        self._known_cids.difference_update(cids)

    # --- values -----------------------------------------------------------

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]:
        """cid -> value, from pending values first, then one batched read.

        Every stored value is checked against its content id: damaged bytes
        raise CorruptValueError naming the calls that produced the value.
        """
        wanted = dict.fromkeys(cids)
        loaded: dict[str, Any] = {}
        missing: Iterable[str] = wanted
        if self._pending_values:
            missing = [cid for cid in wanted if cid not in self._pending_values]
            loaded.update((cid, self._pending_values[cid].value) for cid in wanted if cid in self._pending_values)
        for row in self.store.value_rows(missing) if missing else ():
            try:
                loaded[row[0]] = self.load_row(row)[0]
            except CorruptValueError as err:
                raise self.corrupt_value_error(row[0], str(err)) from None
        if len(loaded) < len(wanted):
            absent = next(cid for cid in wanted if cid not in loaded)
            raise NotStoredError(f"no value with content id {absent} is stored")
        return loaded

    def load_row(self, row: StoredValue) -> tuple[Any, bool]:
        """The value of one stored row and whether it was verified; raises CorruptValueError if damaged.

        Pickles and registered formats are checked by the checksum written
        with them (a pickle need not re-pickle to the same bytes); the other
        formats by recomputing the content id, since they round-trip exactly.
        A pickle written before checksums is checked by its bytes' digest or
        its content id; when neither confirms it (a container of objects that
        re-pickle differently, a type whose id changed) it is returned
        unverified, as earlier releases did, and ``storage.check`` lists it.
        """
        cid, format_name, data, size_bytes = row
        vouched = False
        if data is None:
            if self.blobs is None:
                raise NotStoredError(f"value {cid} is in a blob store, but this storage has none")
            with self.blobs.open(cid) as handle:
                self.blobs.check_size(cid, handle, size_bytes)
                value, vouched = load_file(format_name, handle, allow_pickle=self.allow_pickle)
        elif len(data) != size_bytes:
            raise CorruptValueError(f"{len(data)} bytes are stored, {size_bytes} were written")
        elif format_name == FORMAT_MARSHAL:  # most small values: skip the dispatch
            value = decode_plain(data)
        else:
            value, vouched = loads_checked(format_name, data, allow_pickle=self.allow_pickle)
        if vouched or _has_content_id(value, cid, format_name, data):
            return value, True
        if format_name == FORMAT_PICKLE or format_name.startswith(USER_PREFIX):
            return value, False  # no checksum to go by: written before checksums existed
        raise CorruptValueError(
            "it loads as a value with another content id (if an earlier release wrote it lossily, "
            "dropping its calls recomputes it)")

    def corrupt_value_error(self, cid: str, reason: str) -> CorruptValueError:
        """The error for a damaged value: which calls produced (or used) it, and what to do."""
        producers = calls_with_value(self.store.snapshot(), [cid]).get(cid, [])
        calls = self.store.calls_by_hids(hid for hid, _ in producers)
        role = "produced" if any(is_output for _, is_output in producers) else "used"
        named = ", ".join(f"{call.op} (call {call.hid})" for call in calls[:5]) or "no stored call"
        more = f" and {len(calls) - 5} more" if len(calls) > 5 else ""
        return CorruptValueError(
            f"the stored value {cid} is damaged: {reason}. Calls that {role} it: {named}{more}. "
            "Drop them with storage.drop_calls([...]) and run them again, or run "
            "storage.check(repair=True) to remove every damaged value and the calls behind it",
            cid=cid, call_hids=tuple(call.hid for call in calls))


def _has_content_id(value: Any, cid: str, format_name: str, data: bytes | None) -> bool:
    """Whether ``value`` has content id ``cid``; a pickle written before checksums also by its exact bytes."""
    if format_name == FORMAT_PICKLE and data is not None and tagged_digest(b"pickle", data).hex() == cid:
        return True
    try:
        return content_id(value) == cid
    except MemostoreError:
        return False


def calls_with_value(snapshot: Snapshot, cids: Iterable[str]) -> dict[str, list[tuple[str, bool]]]:
    """cid -> (call hid, whether the value is the call's output) for every edge holding one of ``cids``."""
    wanted = set(cids)
    found: dict[str, list[tuple[str, bool]]] = {}
    edge_cids, edge_calls, edge_out = snapshot.edge_cids, snapshot.edge_calls, snapshot.edge_out
    for cid in wanted:
        start = edge_cids.find(cid)
        while start != -1:
            if start % HASH_CHARS == 0:
                position = start // HASH_CHARS
                call_hid = edge_calls[start:start + HASH_CHARS]
                found.setdefault(cid, []).append((call_hid, edge_out[position] == "1"))
            start = edge_cids.find(cid, start + 1)
    return found


def _outputs_of(call: Call) -> StoredOutputs:
    return StoredOutputs(call.hid, call.multi_output,
                         [(name, ref.hid, ref.cid) for name, ref in call.outputs.items()])
