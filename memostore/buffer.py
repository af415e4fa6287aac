"""Pending writes, the read-through call cache, and the batched flush.

The call path asks ``find`` (cache, then pending calls, then one indexed
query) and hands new calls to ``record``. Nothing reaches the database until
``flush``, which writes every pending row in one transaction: large values
to the blob store first, so the metadata never names a blob that is not on
disk. A process killed before a flush loses only the unflushed calls.
"""

from __future__ import annotations

import marshal
import threading
import time
from typing import Any, Iterable

from memostore.backends.base import BlobStore, MetadataStore, StoredOutputs, StoredValue, WriteBatch
from memostore.errors import NotStoredError
from memostore.model import Call
from memostore.serialization import FORMAT_MARSHAL, Parts, dumps, load_file, loads

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
        """The pending calls, refs and values as one WriteBatch (large values go to the blob store first)."""
        values = []
        for cid, serialized in self._pending_values.items():
            data = serialized.data
            inline: bytes | None = None
            if self.blobs is not None and len(data) > self.blob_threshold_bytes:
                self.blobs.put(cid, data.buffers if isinstance(data, Parts) else data)
            else:
                inline = data.tobytes() if isinstance(data, Parts) else data
            values.append(StoredValue(cid, serialized.format, inline, len(serialized.data)))
        now = time.time()
        op_versions = [
            {"op": op, "version": version, "source": source, "dependencies": dependencies,
             "first_used": now, "last_used": now}
            for (op, version), (source, dependencies) in self._versions_used.items()
        ]
        return WriteBatch(values, dict(self._pending_refs), list(self._pending_calls.values()), op_versions)

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
        """cid -> value, from pending values first, then one batched read."""
        wanted = dict.fromkeys(cids)
        loaded: dict[str, Any] = {}
        missing: Iterable[str] = wanted
        if self._pending_values:
            missing = [cid for cid in wanted if cid not in self._pending_values]
            loaded.update((cid, self._pending_values[cid].value) for cid in wanted if cid in self._pending_values)
        in_blobs = []
        allow_pickle = self.allow_pickle
        for cid, format_name, data, size_bytes in self.store.value_rows(missing) if missing else ():
            if data is None:
                in_blobs.append((cid, format_name, size_bytes))
            elif format_name == FORMAT_MARSHAL:  # most small values: skip the dispatch
                loaded[cid] = marshal.loads(data)
            else:
                loaded[cid] = loads(format_name, data, allow_pickle=allow_pickle)
        for cid, format_name, size_bytes in in_blobs:
            if self.blobs is None:
                raise NotStoredError(f"value {cid} is in a blob store, but this storage has none")
            with self.blobs.open(cid) as handle:
                self.blobs.check_size(cid, handle, size_bytes)
                loaded[cid] = load_file(format_name, handle, allow_pickle=allow_pickle)
        if len(loaded) < len(wanted):
            absent = next(cid for cid in wanted if cid not in loaded)
            raise NotStoredError(f"no value with content id {absent} is stored")
        return loaded


def _outputs_of(call: Call) -> StoredOutputs:
    return StoredOutputs(call.hid, call.multi_output,
                         [(name, ref.hid, ref.cid) for name, ref in call.outputs.items()])
