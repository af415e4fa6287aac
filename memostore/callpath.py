"""The call path's one door into a storage: find stored calls, turn hits into
Refs, record finished and failed calls.

``op.py``, ``parallel.py`` and ``history.py`` talk to a storage's calls only
through its ``CallPath`` (``storage.call_path``); the write buffer and the
claim store stay private behind it. Every method takes a call's
``CallIdentity`` whole.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from typing import Any, Iterable, Protocol, Sequence

from memostore.backends.base import ClaimStore, StoredOutputs
from memostore.buffer import CallBuffer, SerializedValue, serialize_value
from memostore.deps import Dependency
from memostore.errors import (
    OpNameConflictError,
    SerializationError,
    StorageError,
    UnhashableOutputError,
    UnhashableValueError,
    UnknownOpError,
)
from memostore.figures import storable_figure
from memostore.files import File, freeze
from memostore.hashing import content_id
from memostore.model import Call, CallError, CallIdentity, Ref, output_ref_hid
from memostore.not_a_value import made_by
from memostore.versioning import current_op, current_ops, live_functions

logger = logging.getLogger(__name__)

# True while an op's body runs under a storage: nested op calls then hand
# plain values to the body, which works on values, not Refs.
inside_op: contextvars.ContextVar[bool] = contextvars.ContextVar("memostore_inside_op", default=False)

CLAIM_WORTH_S = 0.1  # a plain block claims calls of ops that take this long (claiming costs ~3 writes)
CLAIM_POLL_S = 0.2  # how often a block waiting for a call another process computes looks again


class VersionedOp(Protocol):
    """What a storage needs of an op to version it."""

    name: str
    module: str
    qualname: str
    explicit_name: bool
    version: str
    version_pinned: bool
    source: str | None
    func: Any

    def version_with(self, dependencies: Sequence[Dependency]) -> str: ...

    def former_versions_with(self, dependencies: Sequence[Dependency]) -> set[str]: ...


@dataclasses.dataclass(frozen=True)
class RunReport:
    """What the last ``with storage:`` block (or ``storage.map``) did.

    ``computed``: calls whose function ran (here, in the block's threads, or
    in worker processes its ops were sent to); ``hits``: calls found stored
    (loaded, not run); ``failed``: calls that raised in this run, plus
    recorded failures found and not run again (``retry_failed=False``), of
    which there were ``failed_earlier``; ``run_id``: the run as stored
    (``storage.runs()``, ``storage.cf(run=...)``).
    """

    computed: int
    hits: int
    failed: int
    started_at: float  # seconds since the epoch
    duration_s: float
    failed_earlier: int = 0
    run_id: int | None = None

    def __str__(self) -> str:
        """One line for people: ``computed 3, found stored 9, failed 0 in 0.21 s (started 2026-12-02 10:14:03 UTC)``."""
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.started_at))
        earlier = f" ({self.failed_earlier} recorded earlier, not run again)" if self.failed_earlier else ""
        return (f"computed {self.computed}, found stored {self.hits}, failed {self.failed}{earlier} "
                f"in {self.duration_s:.2f} s (started {started} UTC)")


COMPUTED, HITS, FAILED, FAILED_EARLIER = range(4)  # the counts of a run, in RunReport's order


def _new_counters() -> list[itertools.count[int]]:
    return [itertools.count() for _ in range(4)]


def _counted(counter: itertools.count[int]) -> int:
    """How often ``next`` was called on a fresh counter (its repr is ``count(N)``)."""
    return int(repr(counter)[len("count("):-1])


def add_to_tally(path: str, report: RunReport) -> None:
    """Add a worker process's counts to the tally file of the run that sent it work
    (gone once that run finished: then nothing is counted)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return
    try:  # one short append: concurrent workers' lines never interleave
        os.write(descriptor, f"{report.computed} {report.hits} {report.failed} {report.failed_earlier}\n".encode())
    finally:
        os.close(descriptor)


def _read_tally(path: str) -> list[int]:
    """The summed counts in a tally file, which is removed."""
    totals = [0, 0, 0, 0]
    try:
        with open(path, encoding="ascii") as handle:
            lines = handle.read().splitlines()
        os.unlink(path)
    except OSError:
        return totals
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and all(part.isdigit() for part in parts):
            totals = [total + int(part) for total, part in zip(totals, parts, strict=True)]
    return totals


class CallPath:
    """Find, hit and record calls of one storage."""

    def __init__(self, buffer: CallBuffer, claims: ClaimStore, claim_ttl_s: float, shared: bool) -> None:
        self._buffer = buffer
        self._claims = claims
        # Only a store other processes reach needs claims; then only calls worth one (see await_or_claim).
        self._block_claims = _BlockClaims(claims, claim_ttl_s) if shared else None
        self._last_duration_s: dict[str, float] = {}  # op name -> how long its last computed call took
        self._op_functions: dict[str, tuple[str, str]] = {}  # op name -> (module, qualname) used here
        # Computed, hits, failed, failed earlier since the run started. Counters, not ints: a block's
        # pool threads count into them too, and next() on one is atomic (a lock would slow every hit).
        self._counters = _new_counters()
        self._tally: str | None = None  # where worker processes add their counts (see worker_tally)
        self._run_started = (0.0, 0.0)  # time.time(), time.perf_counter()
        self.loaded = bytearray()  # the 16-byte hids of the calls found stored since the run started

    def start_run(self) -> None:
        """Count calls from now on (the outermost block was entered)."""
        self._counters = _new_counters()
        if self._tally is not None:
            _read_tally(self._tally)
            self._tally = None
        self._run_started = (time.time(), time.perf_counter())
        self.loaded = bytearray()

    def finish_run(self) -> RunReport:
        """What ran, hit and failed since ``start_run``, here and in worker processes."""
        counts = [_counted(counter) for counter in self._counters]
        if self._tally is not None:
            counts = [mine + theirs for mine, theirs in zip(counts, _read_tally(self._tally), strict=True)]
            self._tally = None
        computed, hits, failed, failed_earlier = counts
        started_at, clock = self._run_started
        return RunReport(computed, hits, failed, started_at, time.perf_counter() - clock, failed_earlier)

    def count(self, what: int) -> None:
        """Count one call of the run: COMPUTED, HITS, FAILED (raised now and not recorded: recorded
        failures count themselves), or FAILED_EARLIER (a recorded failure found, not run again)."""
        next(self._counters[what])
        if what == FAILED_EARLIER:
            next(self._counters[FAILED])

    def worker_tally(self) -> str:
        """The file where worker processes that ops carried this storage to add what they computed
        and found (see ``carry``); read and removed when the run finishes."""
        if self._tally is None:
            descriptor, self._tally = tempfile.mkstemp(prefix="memostore-run-", suffix=".tally")
            os.close(descriptor)
        return self._tally

    def check_op(self, name: str, module: str, qualname: str, explicit_name: bool) -> None:
        """Refuse a second function under an op name this storage already used for another.

        The one place an op's identity is checked against this store, once
        per op and block. Redefining the same function (same module and
        qualname, as when a notebook cell runs again) is fine; so is
        ``@op(name=...)`` on a moved or renamed function, whose former
        definition is no longer alive. Two live functions never share a name.
        """
        known = self._op_functions.get(name)
        if known is None and module != "__main__":
            # The function whose calls the store holds, as the last process that wrote them said;
            # a script's functions (module __main__) may be the same code imported elsewhere.
            stored = self._buffer.store.op_identities([name]).get(name)
            if stored is not None and stored[1] is not None and stored[0] not in (None, "__main__"):
                known = (stored[0], stored[1])
        if known is not None and known != (module, qualname) and (
                not explicit_name or known in live_functions(name)):
            raise OpNameConflictError(
                f"op name {name!r} already holds calls of {known[0]}.{known[1]} in this storage, and "
                f"{module}.{qualname} is another function; give one of them its own name with "
                f"@op(name='...') (an explicit @op(name={name!r}) on a function that replaced the other "
                "keeps its calls)")
        self._op_functions[name] = (module, qualname)

    @property
    def pending_calls(self) -> int:
        """How many calls wait for the next commit."""
        return self._buffer.pending_calls

    def find(self, key: CallIdentity) -> StoredOutputs | None:
        """The stored call with this hid, else one with this cid (cache, pending, store), else None."""
        return self._buffer.find(key.hid, key.cid)

    def find_many(self, keys: Sequence[CallIdentity]) -> tuple[dict[str, StoredOutputs], set[str]]:
        """Batched ``find`` in one store round trip: call hid -> outputs for the
        hits, and the hids stored as failed (retried only when asked)."""
        return self._buffer.find_many([(key.hid, key.cid) for key in keys])

    def hit(self, key: CallIdentity, found: StoredOutputs, count: bool = True) -> Ref | tuple[Ref, ...]:
        """Lazy refs to a stored call's outputs; records this history if found by content.

        ``count=False``: a structural call (see ``collections``), left out of ``last_run``."""
        if count:
            next(self._counters[HITS])
            self.loaded += bytes.fromhex(key.hid)
        same_history = found.call_hid == key.hid
        refs = [made_by(Ref(cid, hid if same_history else output_ref_hid(key.hid, name)), key.op)
                for name, hid, cid in found.outputs]
        if not same_history:
            # Same contents reached by another path: record this history too.
            outputs = {name: ref for (name, _, _), ref in zip(found.outputs, refs, strict=True)}
            self._buffer.record(Call(key.op, key.version, key.hid, key.cid, key.inputs, outputs,
                                     multi_output=found.multi_output, started_at=time.time()), {})
        return tuple(refs) if found.multi_output else refs[0]

    def record_result(self, key: CallIdentity, named_outputs: Iterable[tuple[str, Any]], multi_output: bool,
                      started_at: float, duration_s: float, count: bool = True) -> Call:
        """Hash, serialize and queue a finished call; returns it with in-memory outputs (``count`` as in ``hit``)."""
        outputs: dict[str, Ref] = {}
        for name, value in named_outputs:
            if isinstance(value, File):
                value = freeze(value)  # the result must not change when its path is written again
            value = storable_figure(value)  # a matplotlib figure is kept as its images
            try:
                cid = content_id(value)
            except UnhashableValueError as err:
                raise UnhashableOutputError(f"op {key.op!r}, output {name!r}: {err}") from err
            outputs[name] = made_by(Ref(cid, output_ref_hid(key.hid, name), value), key.op)
        new_values = self._serialize_new(key.op, key.inputs, outputs)
        call = Call(key.op, key.version, key.hid, key.cid, key.inputs, outputs,
                    multi_output=multi_output, started_at=started_at, duration_s=duration_s)
        self._buffer.record(call, new_values)
        if count:
            next(self._counters[COMPUTED])
            self._last_duration_s[key.op] = duration_s
        return call

    def await_or_claim(self, key: CallIdentity) -> tuple[StoredOutputs | None, str | None]:
        """Before computing a missing call: claim it, or wait for the process that holds it.

        Returns the outputs if another process stored the call meanwhile, and
        the claim's owner to ``release`` after computing (None: not claimed).
        A call is claimed only if its op's last call here took at least
        ``CLAIM_WORTH_S`` (or none ran yet): fast calls are cheaper to repeat
        than to claim.
        """
        if self._block_claims is None:
            return None, None
        last = self._last_duration_s.get(key.op)
        if last is not None and last < CLAIM_WORTH_S:
            return None, None
        while True:
            owner = self._block_claims.take(key.hid)
            if owner is not None:
                # Another process may have stored it and let go of its claim since our lookup missed.
                found = self.find(key)
                if found is not None:
                    self._block_claims.release(owner)
                    return found, None
                return None, owner
            time.sleep(CLAIM_POLL_S)
            found = self.find(key)
            if found is not None:
                return found, None

    def release(self, owner: str) -> None:
        """Commit what was computed under a claim, then let others see the claim gone."""
        assert self._block_claims is not None
        try:
            self._buffer.flush()
        finally:
            self._block_claims.release(owner)

    def record_failure(self, key: CallIdentity, error: CallError, started_at: float, duration_s: float) -> Call:
        """Queue a call that raised, with its inputs and error, and no outputs."""
        call = Call(key.op, key.version, key.hid, key.cid, key.inputs, {}, status="failed",
                    started_at=started_at, duration_s=duration_s, error=error)
        self._buffer.record(call, self._serialize_new(key.op, key.inputs, {}))
        self.count(FAILED)
        return call

    def forget(self, call_hids: Iterable[str]) -> None:
        """Stop serving these calls from this process's cache (their values turned out gone)."""
        self._buffer.forget(call_hids)

    def record_carried(self, calls: Iterable[Call]) -> None:
        """Queue calls whose values are all stored already (carried over to a new version)."""
        for call in calls:
            self._buffer.record(call, {})

    def _serialize_new(self, op_name: str, inputs: dict[str, Ref], outputs: dict[str, Ref]
                       ) -> dict[str, SerializedValue]:
        """cid -> bytes of the in-memory values among these refs that are neither stored nor pending."""
        serialized: dict[str, SerializedValue] = {}
        is_known = self._buffer.is_known
        for role, refs in (("argument", inputs), ("output", outputs)):
            for name, ref in refs.items():
                cid = ref.cid
                if cid in serialized or not ref.in_memory or is_known(cid):
                    continue  # a lazy ref is a stored value already
                try:
                    serialized[cid] = serialize_value(ref.value)
                except SerializationError as err:
                    raise SerializationError(f"op {op_name!r}, {role} {name!r}: {err}") from err
        return serialized

    # --- claims: who computes a call that several processes miss ------------

    def claim(self, call_hids: Iterable[str], owner: str, ttl_s: float) -> set[str]:
        """Claim these calls unless another owner holds them; returns the hids ``owner`` holds."""
        return self._claims.claim(call_hids, owner, ttl_s)

    def renew_claims(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every claim ``owner`` holds."""
        self._claims.renew_claims(owner, ttl_s)

    def release_claims(self, owner: str) -> None:
        """Drop every claim ``owner`` holds."""
        self._claims.release_claims(owner)


class _BlockClaims:
    """Claims of the calls a block computes, one owner per call, renewed while they run."""

    def __init__(self, claims: ClaimStore, ttl_s: float) -> None:
        self._claims = claims
        self._ttl_s = ttl_s
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}:"
        self._held: set[str] = set()
        self._count = itertools.count()
        self._heartbeat_pid = -1  # the process whose heartbeat thread renews the claims

    def take(self, call_hid: str) -> str | None:
        """Claim one call; returns the owner that holds it, or None if another process does."""
        owner = f"{self._prefix}{next(self._count)}"
        if call_hid not in self._claims.claim([call_hid], owner, self._ttl_s):
            return None
        self._held.add(owner)
        if self._heartbeat_pid != os.getpid():
            self._heartbeat_pid = os.getpid()
            threading.Thread(target=self._renew, name="memostore-block-claims", daemon=True).start()
        return owner

    def release(self, owner: str) -> None:
        self._held.discard(owner)
        self._claims.release_claims(owner)

    def _renew(self) -> None:
        while True:
            time.sleep(self._ttl_s / 3)
            for owner in list(self._held):
                try:
                    self._claims.renew_claims(owner, self._ttl_s)
                except StorageError as err:  # the server went away: the block's own calls report it
                    logger.warning("could not renew the claim of a call: %s", err)


def named_op(source: Any, reader: Any, method: str, need_live: bool) -> Any:
    """The op ``source`` names: an op itself, or the op defined in this process
    under that stored name; where the method needs no code, a stored name not
    defined here comes back as the name."""
    if not isinstance(source, str):
        if not (hasattr(source, "name") and hasattr(source, "version_with")):
            raise UnknownOpError(f"storage.{method} takes an op or its stored name, got "
                                 f"{type(source).__name__} {source!r}; pass the @op function itself")
        return source
    try:
        live = current_op(source)
    except OpNameConflictError:
        if need_live:
            raise
        live = None  # two live functions share the name; reading the store by name needs neither
    if live is not None:
        return live
    if reader.op_version_rows(source) or reader.op_call_count(source):
        if need_live:
            raise UnknownOpError(f"storage.{method}({source!r}): the op is stored but not defined in this "
                                 "process; import the module that defines it (or pass the op itself)")
        return source
    snapshot = reader.snapshot()
    used = set(snapshot.call_versions.split(",")) if snapshot.call_versions else set()
    stored = sorted({op for version_id, op, _ in snapshot.versions if str(version_id) in used})
    raise UnknownOpError(f"storage.{method}({source!r}): no op of that name is stored; the stored ops are "
                         f"{stored}" + (" (none yet)" if not stored else "")
                         + ("; nor is it defined in this process: define it with @op, or import the module that "
                            "does" if need_live else ""))


def stored_op_name(source: Any, reader: Any, method: str) -> str:
    """The name ``source`` (an op or a name) is stored under, for methods that read the store by name;
    a name neither stored nor defined here raises UnknownOpError (a typo must not read as an op
    with no calls)."""
    found = named_op(source, reader, method, need_live=False)
    return found if isinstance(found, str) else str(found.name)


def defined_ops(reader: Any) -> list[Any]:
    """The ops defined in this process, by name; a name two live functions
    share raises OpNameConflictError if this store holds calls under it."""
    found = []
    for name in sorted(current_ops()):
        try:
            op = current_op(name)
        except OpNameConflictError:
            if reader.op_call_count(name):
                raise
            continue
        if op is not None:
            found.append(op)
    return found


# Storages with a block open in some thread, and how many: an op called in a
# thread without a block of its own (a pool's worker thread) uses the one
# storage whose block is open (see ``Op.__call__``).
_open_blocks: dict[Any, int] = {}
_open_blocks_lock = threading.Lock()


def note_block(storage: Any, opened: bool) -> None:
    """Count an outermost block of ``storage`` opened (or closed) in some thread."""
    with _open_blocks_lock:
        count = _open_blocks.get(storage, 0) + (1 if opened else -1)
        if count > 0:
            _open_blocks[storage] = count
        else:
            _open_blocks.pop(storage, None)


def open_block_storage() -> Any:
    """The one storage with a block open in this process, or None (none, or several: ambiguous)."""
    if len(_open_blocks) != 1:
        return None
    with _open_blocks_lock:
        return next(iter(_open_blocks), None) if len(_open_blocks) == 1 else None


def forget_blocks() -> None:
    """No block is open (in a forked child: its parent's blocks are not its own)."""
    _open_blocks.clear()
