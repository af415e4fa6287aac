"""Pending writes, the read-through call cache, and the batched flush.

The call path asks ``find`` (cache, then pending calls, then one indexed
query) and hands new calls to ``record``. Nothing reaches the database until
``flush``, which writes every pending row in one transaction: large values
to the blob store first, so the metadata never names a blob that is not on
disk. A process killed before a flush loses only the unflushed calls.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, NamedTuple

from memostore.backends.base import BlobStore, MetadataStore, StoredOutputs, StoredValue, WriteBatch
from memostore.backends.faults import storage_error
from memostore.backends.snapshots import calls_with_value
from memostore.errors import (
    CorruptValueError,
    MemostoreError,
    MissingBlobError,
    NotStoredError,
    StorageError,
    UntrustedValueError,
)
from memostore.files import File
from memostore.gcpause import paused_gc
from memostore.hashing import content_id, tagged_digest
from memostore.marshal_format import decode as decode_plain
from memostore.model import NAME_CHARS, Call, storable_call, storable_text
from memostore.serialization import (
    FORMAT_MARSHAL,
    FORMAT_PICKLE,
    UNPICKLE_FIX,
    USER_PREFIX,
    Parts,
    dumps,
    load_file,
    loads_checked,
)

logger = logging.getLogger(__name__)

CACHE_MAX_CALLS = 200_000  # stored calls remembered per process for fast hits
# Content ids this process knows are stored (their values need not be sent again); past this
# many, the set starts over, so a process making millions of calls does not grow without bound.
KNOWN_VALUES_MAX = 1_000_000
# How long this process serves hits from its cache before asking whether another
# process dropped calls or deleted values meanwhile (one indexed read).
CACHE_RECHECK_S = 0.2
COLLECTION_NOTICE_S = 5 * CACHE_RECHECK_S  # a cleanup waits this long after telling other processes
FLUSH_EVERY_CALLS = 10_000  # pending calls that trigger a flush mid-block
FLUSH_EVERY_BYTES = 256 * 2**20  # pending serialized bytes that trigger one


class SerializedValue(NamedTuple):
    """A value and its bytes, ready to be written (``serialize_value``). A tuple, not an object: the
    collector stops tracking one that holds no containers, and a block queues thousands."""

    value: Any
    format: str
    data: Any  # bytes, or serialization.Parts


def serialize_value(value: Any) -> SerializedValue:
    """``value`` with its bytes."""
    return SerializedValue(value, *dumps(value))


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
        # (op, version) -> (source, dependencies JSON, module, qualname), for op versions used since the last flush.
        self._versions_used: dict[tuple[str, str], tuple[str | None, str | None, str | None, str | None]] = {}
        self._collection_token: str | None = None
        self._checked_at = -CACHE_RECHECK_S
        # The stored run the pending calls belong to, created on first use (see ``callpath.RunRecorder``).
        self.run_id: Callable[[], int | None] | None = None

    # --- the call path ----------------------------------------------------

    def find(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """A call with this hid, else one with this cid: cache, pending, store."""
        self._check_collections()
        found = self._find_here(call_hid, call_cid)
        if found is not None:
            return found
        found = self.store.find_outputs(call_hid, call_cid)
        if found is not None and found.call_hid == call_hid:
            self._remember(found)
        return found

    def find_many(self, keys: list[tuple[str, str]]) -> tuple[dict[str, StoredOutputs], set[str]]:
        """Batched ``find`` for (call hid, call cid) pairs: one store round trip by hid, then by cid for the rest.

        Returns call hid -> outputs for the hits, and the hids stored as failed.
        """
        self._check_collections()
        found: dict[str, StoredOutputs] = {}
        ask: list[tuple[str, str]] = []
        for call_hid, call_cid in keys:
            local = self._find_here(call_hid, call_cid)
            if local is not None:
                found[call_hid] = local
            else:
                ask.append((call_hid, call_cid))
        by_hid, _, failed = self.store.find_outputs_many([h for h, _ in ask], [])
        # By content only the calls not stored under their own history: none, on a re-run.
        by_content = [c for h, c in ask if h not in by_hid and h not in failed]
        by_cid = self.store.find_outputs_many([], by_content)[1] if by_content else {}
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

    def _check_collections(self) -> None:
        """Forget the cached calls and values once another process dropped calls or
        deleted values: asked at most every CACHE_RECHECK_S, and a cleanup waits
        longer than that before it deletes (see ``Storage.cleanup_refs``)."""
        now = time.monotonic()
        if now - self._checked_at < CACHE_RECHECK_S:
            return
        self._checked_at = now
        token = self.store.collection_token()
        if token != self._collection_token:
            with self._lock:
                self._cache.clear()
                self._known_cids.clear()
            self._collection_token = token

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
        """Queue a call, its refs, and the values not stored yet; may flush.

        Raises OpDefinitionError for a call no database could store (see
        ``storable_call``): that call is refused here, and the others commit.
        """
        call = storable_call(call)
        with self._lock:
            for cid, serialized in new_values.items():
                if cid not in self._pending_values and cid not in self._known_cids:
                    self._pending_values[cid] = serialized
                    self._pending_bytes += len(serialized.data)
            pending_refs = self._pending_refs
            for refs in (call.inputs, call.outputs):
                for ref in refs.values():
                    pending_refs[ref.hid] = ref.cid
            self._pending_calls[call.hid] = call
            self._pending_by_cid.setdefault(call.cid, call.hid)
            if len(self._pending_calls) >= FLUSH_EVERY_CALLS or self._pending_bytes >= FLUSH_EVERY_BYTES:
                self.flush()

    def note_version(self, op_name: str, version: str, source: str | None, dependencies: str | None,
                     module: str | None = None, qualname: str | None = None) -> None:
        """Remember that this op version ran (or hit) in this process, and the op's function."""
        noted = (source, dependencies, module, qualname)
        if self._versions_used.get((op_name, version)) == noted:
            return  # every call of the op notes it: the common case costs one lookup
        if len(op_name) > NAME_CHARS or storable_text(op_name) != op_name:
            return  # its calls are refused by ``record``: no version row to write
        self._versions_used[(op_name, version)] = noted

    # --- flushing ---------------------------------------------------------

    @property
    def pending_calls(self) -> int:
        """How many calls wait for the next flush."""
        return len(self._pending_calls)

    def flush(self) -> None:
        """Write every pending row in one transaction.

        The cyclic collector is paused meanwhile: building the rows of ten
        thousand calls allocates containers that all live until the commit,
        which made the collector rescan them over and over.
        """
        if not self._pending_calls and not self._pending_values and not self._versions_used:
            return  # checked again under the lock: the common case of nothing to write costs no lock
        with self._lock, paused_gc():
            if not self._pending_calls and not self._pending_values and not self._versions_used:
                return
            left_out: set[str] = set()
            try:
                batch = self._batch()
                self.store.write(batch, lambda missing: self._complete(batch, missing, left_out))
            except OSError as err:  # a blob write: a full disk says so, and every call stays pending
                mapped = storage_error(err, "its blob directory")
                if mapped is None:
                    raise
                raise mapped from err
            for call in self._pending_calls.values():
                if call.status == "ok" and call.hid not in left_out:
                    self._remember(_outputs_of(call))
            if len(self._known_cids) >= KNOWN_VALUES_MAX:  # a hint, not a record: start it over
                self._known_cids.clear()
            self._known_cids.update(self._pending_values)
            self._pending_calls.clear()
            self._pending_by_cid.clear()
            self._pending_values.clear()
            self._pending_refs.clear()
            self._versions_used.clear()
            self._pending_bytes = 0

    def _complete(self, batch: WriteBatch, missing: set[str], left_out: set[str]) -> WriteBatch:
        """Inside the flush's transaction, where no cleanup runs: the rows to write.

        Whatever the cache says, a value the calls name that is not stored (a
        cleanup in another process deleted it) is written again from memory,
        and a blob file that went is put back. A call naming a value that is
        neither stored nor in memory (a hit on a call dropped meanwhile) is
        left out, so no committed call ever names a missing value.
        """
        left_out.clear()
        if self.blobs is not None:
            blob_cids = [value.cid for value in batch.values if value.inline_data is None]
            for cid in set(blob_cids) - self.blobs.exists(blob_cids):
                data = self._pending_values[cid].data
                self.blobs.put(cid, data.buffers if isinstance(data, Parts) else data)
        if not missing:
            return batch
        calls = self._pending_calls.values()
        in_memory = {ref.cid: ref for call in calls for ref in (*call.inputs.values(), *call.outputs.values())
                     if ref.cid in missing and ref.in_memory}
        gone = missing - in_memory.keys()
        left_out.update(call.hid for call in calls
                        if any(ref.cid in gone for ref in (*call.inputs.values(), *call.outputs.values())))
        if left_out:
            logger.warning("not storing %d calls whose values another process deleted meanwhile", len(left_out))
        return WriteBatch(
            batch.values + [self._value_row(cid, serialize_value(ref.value)) for cid, ref in in_memory.items()],
            {hid: cid for hid, cid in batch.refs.items() if cid not in gone},
            [call for call in batch.calls if call.hid not in left_out],
            batch.op_versions, batch.run_id)

    def _value_row(self, cid: str, serialized: SerializedValue) -> StoredValue:
        """The values row of a serialized value, its bytes put in the blob store if large."""
        data = serialized.data
        inline: bytes | None = None
        if self.blobs is not None and len(data) > self.blob_threshold_bytes:
            self.blobs.put(cid, data.buffers if isinstance(data, Parts) else data)
        else:
            inline = data.tobytes() if isinstance(data, Parts) else data
        return StoredValue(cid, serialized.format, inline, len(data))

    def _batch(self) -> WriteBatch:
        """The pending calls, refs and values as one WriteBatch (large values go to the blob store first)."""
        values = []
        for cid, serialized in self._pending_values.items():
            values.append(self._value_row(cid, serialized))
        now = time.time()
        op_versions = [
            {"op": op, "version": version, "source": source, "dependencies": dependencies,
             "first_used": now, "last_used": now, "module": module, "qualname": qualname}
            for (op, version), (source, dependencies, module, qualname) in self._versions_used.items()
        ]
        run_id = self.run_id() if self._pending_calls and self.run_id is not None else None
        return WriteBatch(values, dict(self._pending_refs), list(self._pending_calls.values()), op_versions, run_id)

    def collect(self, grace_s: float, announce: bool) -> dict[str, int]:
        """Delete what no stored call uses (see ``Storage.cleanup_refs``).

        With ``announce`` (a store other processes may share), first tell them
        and give them time to forget their caches: they ask every
        CACHE_RECHECK_S, so none serves a hit on a call whose values are going.
        """
        files = [0, 0]

        def delete_files(deleted: list[str], stored: set[str]) -> None:
            assert self.blobs is not None
            self.blobs.delete(deleted)
            files[:] = self.blobs.reclaim(stored, grace_s)

        refs, sizes, _ = self.store.delete_unreferenced(None if self.blobs is None else delete_files,
                                                        COLLECTION_NOTICE_S if announce else 0.0)
        self.forget_values(sizes)
        return {"refs": refs, "values": len(sizes), "files": files[0], "bytes": sum(sizes.values()) + files[1]}

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

    def cache_info(self) -> dict[str, int]:
        """Sizes of the call cache and of the pending writes."""
        return {"cached_calls": len(self._cache), "max_cached_calls": CACHE_MAX_CALLS,
                "known_values": len(self._known_cids), "pending_calls": len(self._pending_calls),
                "pending_values": len(self._pending_values), "pending_bytes": self._pending_bytes}

    def clear_cache(self) -> None:
        """Forget the cached calls and which values are stored (pending writes stay)."""
        with self._lock:
            self._cache.clear()
            self._known_cids.clear()

    def preload(self, fetch: Callable[[], Iterable[StoredOutputs]]) -> int:
        """Cache the stored calls ``fetch()`` reads (up to the cache's size); returns how many were cached."""
        self._check_collections()  # before reading: a collection token seen later would empty the cache
        cached = 0
        for outputs in fetch():
            if cached == CACHE_MAX_CALLS:
                break
            self._remember(outputs)
            cached += 1
        return cached

    def forget_values(self, cids: Iterable[str]) -> None:
        """Stop assuming these values are stored (after they were deleted)."""
        self._known_cids.difference_update(cids)

    # --- values -----------------------------------------------------------

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]:
        """cid -> value, from pending values first, then one batched read.

        Every stored value is checked against its content id: damaged bytes
        raise CorruptValueError naming the calls that produced the value.
        """
        loaded, unloadable = self.load_values_or_problems(cids)
        if unloadable:
            raise next(iter(unloadable.values()))
        return loaded

    def load_values_or_problems(self, cids: Iterable[str]) -> tuple[dict[str, Any], dict[str, StorageError]]:
        """``load_values`` that does not stop at the first value it cannot serve: cid -> value,
        and cid -> why not (CorruptValueError naming its calls, MissingBlobError, NotStoredError)."""
        wanted = dict.fromkeys(cids)
        loaded: dict[str, Any] = {}
        problems: dict[str, StorageError] = {}
        missing: Iterable[str] = wanted
        if self._pending_values:
            missing = [cid for cid in wanted if cid not in self._pending_values]
            loaded.update((cid, self._pending_values[cid].value) for cid in wanted if cid in self._pending_values)
        if missing:
            found, unloadable = self.load_stored_rows(self.store.value_rows(missing))
            loaded.update(found)
            problems.update(unloadable)
        for cid in wanted:
            if cid not in loaded and cid not in problems:
                problems[cid] = NotStoredError(f"no value with content id {cid} is stored")
        return loaded, problems

    def load_stored_rows(self, rows: Iterable[StoredValue]) -> tuple[dict[str, Any], dict[str, StorageError]]:
        """cid -> value of stored rows, each checked (``load_row``), and cid -> why one cannot be served."""
        loaded: dict[str, Any] = {}
        problems: dict[str, StorageError] = {}
        for row in rows:
            cid, format_name, data, size_bytes = row
            if format_name == FORMAT_MARSHAL and data is not None and len(data) == size_bytes:
                # Most values of a big table: a plain value checked by its content id, without
                # load_row's dispatch (which gives the same value, or says why it cannot).
                try:
                    value = decode_plain(data)
                    if content_id(value) == cid:
                        loaded[cid] = value
                        continue
                except MemostoreError:
                    pass
            try:
                loaded[cid] = self.load_row(row)[0]
            except CorruptValueError as err:
                problems[cid] = self.corrupt_value_error(cid, str(err))
            except MissingBlobError as err:
                problems[cid] = err
            except UntrustedValueError:  # the same refusal, naming the value
                raise UntrustedValueError(f"value {cid[:12]}... is stored as a pickle, and loading a pickle can "
                                          f"run code; {UNPICKLE_FIX}", cid=cid) from None
        return loaded, problems

    def rewrite_value(self, cid: str, value: Any) -> None:
        """Store ``value`` (whose content id the caller checked is ``cid``) over a damaged or missing
        row or blob file of that cid: the row is replaced if its bytes differ, the blob file too."""
        serialized = serialize_value(value)
        with self._lock:
            self.flush()
            try:
                self.store.write(WriteBatch([self._value_row(cid, serialized)], {}, [], []))
            except OSError as err:
                mapped = storage_error(err, "its blob directory")
                if mapped is None:
                    raise
                raise mapped from err
            self._known_cids.add(cid)

    def load_row(self, row: StoredValue) -> tuple[Any, bool]:
        """The value of one stored row and whether it was verified; raises CorruptValueError if damaged.

        Pickles and registered formats are checked by the checksum written
        with them (a pickle need not re-pickle to the same bytes); the other
        formats, and Files, by recomputing the content id, since they
        round-trip exactly. A checksum catches damage; only the content id
        also catches bytes replaced on purpose along with their checksum.
        A pickle written before checksums is checked by its bytes' digest or
        its content id; when neither confirms it (a container of objects that
        re-pickle differently, a type whose id changed) it is returned
        unverified, as earlier releases did, and ``storage.check`` lists it.
        """
        cid, format_name, data, size_bytes = row
        vouched = False
        if data is None:
            if self.blobs is None:
                raise NotStoredError(
                    f"value {cid} is in a blob store, but this storage has none: open the store with "
                    "blob_dir= the directory where the processes that wrote it put their blobs "
                    "(the same path on every machine)")
            with self.blobs.open(cid) as handle:
                self.blobs.check_size(cid, handle, size_bytes)
                value, vouched = load_file(format_name, handle, size_bytes, allow_pickle=self.allow_pickle)
        elif len(data) != size_bytes:
            raise CorruptValueError(f"{len(data)} bytes are stored, {size_bytes} were written")
        elif format_name == FORMAT_MARSHAL:  # most small values: skip the dispatch
            value = decode_plain(data)
        else:
            value, vouched = loads_checked(format_name, data, allow_pickle=self.allow_pickle)
        if isinstance(value, File):  # its content id is cheap to recompute: a forged checksum does not pass
            if content_id(value) != cid:
                raise CorruptValueError("it holds a File whose name or bytes are not those of its content id")
            return value, True
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
            "storage.check(repair=True) (memostore check DB --repair) to remove every damaged value "
            "and the calls behind it",
            cid=cid, call_hids=tuple(call.hid for call in calls))


def _has_content_id(value: Any, cid: str, format_name: str, data: bytes | None) -> bool:
    """Whether ``value`` has content id ``cid``; a pickle written before checksums also by its exact bytes."""
    if format_name == FORMAT_PICKLE and data is not None and tagged_digest(b"pickle", data).hex() == cid:
        return True
    try:
        return content_id(value) == cid
    except MemostoreError:
        return False


def _outputs_of(call: Call) -> StoredOutputs:
    # Tuples of strings: the collector stops tracking them, however many calls the cache holds.
    return StoredOutputs(call.hid, call.multi_output,
                         tuple([(name, ref.hid, ref.cid) for name, ref in call.outputs.items()]))
