"""``storage.map``: many calls of one op, stored ones found in one batched
lookup, the rest computed on an executor and committed as they finish.

Workers only compute: they receive the op's function (cloudpickled once per
map) and plain argument values, and send back the result or the error. The
calling process hashes, serializes and records every result, so workers need
no access to the store for the op itself; ops called inside the op's body are
memoized by the worker into the same store (a SQLite file or PostgreSQL).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import gc
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, Iterator, Literal, Mapping

import cloudpickle

from memostore.argument_check import Watched, watch
from memostore.backends.connections import is_transient
from memostore.callpath import FAILED, FAILED_EARLIER
from memostore.callpath import inside_op as _inside_op
from memostore.carry import function_bytes, pickling_for_map
from memostore.collections import pack_arguments, unpack_result
from memostore.errors import ArgumentChangedError, MapOptionError, OpDefinitionError, OpFailedError, StorageError
from memostore.executors import MapExecutor, Shipment, check_items
from memostore.model import CallError, CallIdentity, call_identity
from memostore.modes import noop_storage, refuse_new_call
from memostore.op import Op, record_result
from memostore.pointers import pointed_objects, without_ignore
from memostore.worker_code import loaded_helpers

if TYPE_CHECKING:
    from memostore.config import StorageConfig
    from memostore.storage import Storage

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip", "record"]
ExecutorSpec = Any  # None | "threads" | "processes" | concurrent.futures.Executor | dask Client
COMMIT_EVERY_S = 1.0  # while results arrive, commit at least this often
WAIT_POLL_S = 0.2  # how often a map waiting for calls claimed elsewhere looks again


class MapResult(list[Any]):
    """The Refs of ``storage.map`` in item order (None where a call failed),
    and how many items were ``computed`` here, were ``hits`` (stored, also
    by another process meanwhile) and ``failed``: their call raised now, or
    it is a recorded failure not run again (``failed_earlier`` of them).
    These count items; ``storage.last_run`` counts the same for calls (two
    equal items are one call)."""

    def __init__(self, size: int) -> None:
        super().__init__([None] * size)
        # per item: "computed", "hit", "failed" or "failed earlier"
        self.how: list[str] = ["failed"] * size

    @property
    def computed(self) -> int:
        return self.how.count("computed")

    @property
    def hits(self) -> int:
        return self.how.count("hit")

    @property
    def failed(self) -> int:
        return self.how.count("failed") + self.failed_earlier

    @property
    def failed_earlier(self) -> int:
        return self.how.count("failed earlier")


@dataclass
class _Task:
    """One distinct missing call, and the item positions waiting for it."""

    positions: list[int]
    kwargs: dict[str, Any]
    key: CallIdentity


@dataclass
class _Outcome:
    ok: bool
    result: Any
    error: CallError | None
    exception: bytes | None
    started_at: float
    duration_s: float
    infrastructure: bool = False  # the error came from reaching the store, not from the op


def map_calls(storage: Storage, op_: Op, items: Iterable[Mapping[str, Any]], executor: ExecutorSpec = None,
              n_jobs: int | None = None, on_error: OnError = "raise", progress: bool = True,
              retry_failed: bool = False, chunksize: int = 1,
              executor_options: Mapping[str, Any] | None = None) -> MapResult:
    """See ``Storage.map``."""
    if not isinstance(op_, Op):
        raise OpDefinitionError(f"storage.map takes an op or its name, got {type(op_).__name__} "
                                f"{getattr(op_, '__qualname__', None) or op_!r}, which is not an op; decorate it "
                                "with @op")
    check_items(op_.name, items)
    if on_error not in ("raise", "skip", "record"):
        raise MapOptionError(f"storage.map(op {op_.name!r}): on_error must be 'raise', 'skip' or 'record', "
                         f"got {on_error!r}")
    executor = MapExecutor(op_.name, executor, n_jobs, chunksize, executor_options)
    with _gc_paused():
        kwargs_list = [_as_kwargs(op_, item, position) for position, item in enumerate(items)]
    if noop_storage() is not None:  # storage.noop(): the plain function per item, here, nothing stored
        return [op_(**kwargs) for kwargs in kwargs_list]  # type: ignore[return-value]
    retry = retry_failed or on_error == "raise"
    with storage:
        results = MapResult(len(kwargs_list))
        with _gc_paused():
            pending = _plan(storage, op_, kwargs_list, results, retry)
        hits = len(kwargs_list) - sum(len(t.positions) for t in pending)
        if not pending:
            return _with_items(storage, op_, results)
        refuse_new_call(storage, op_.name, pending[0].kwargs, more=len(pending) - 1)
        bar = _Progress(op_.name, len(pending), hits, progress)
        try:
            with _Claims(storage) as claims:
                while pending:
                    # Compute what nobody else is computing; wait for the rest, and take
                    # over any whose holder finished without a result or died.
                    held = claims.take(t.key.hid for t in pending)
                    # A claim is free once its holder committed the result: look first.
                    mine = _collect(storage, [t for t in pending if t.key.hid in held], results, retry, bar)
                    if mine:
                        _dispatch(storage, op_, mine, results, executor, n_jobs, on_error, bar)
                    pending = _collect(storage, [t for t in pending if t.key.hid not in held], results, retry, bar)
                    if pending and not mine:
                        time.sleep(WAIT_POLL_S)
        finally:
            bar.close()
        return _with_items(storage, op_, results)


def _with_items(storage: Storage, op_: Op, results: MapResult) -> MapResult:
    """The results of an op annotated ``-> MList`` & co as CollectionRefs, with a Ref per item."""
    if op_.output_kind is not None:
        for position, ref in enumerate(results):
            if ref is not None:
                results[position] = unpack_result(storage, op_.name, op_.output_kind, ref)
    return results


def _collect(storage: Storage, waiting: list[_Task], results: MapResult, retry: bool,
             bar: _Progress) -> list[_Task]:
    """Fill in the calls other processes have finished; return those still missing."""
    if not waiting:
        return []
    storage.commit()
    call_path = storage.call_path
    found, failed = call_path.find_many([t.key for t in waiting])
    still = []
    for task in waiting:
        hit = found.get(task.key.hid)
        if hit is not None or (task.key.hid in failed and not retry):
            for position in task.positions:  # one call, however many items: counted once
                results[position] = None if hit is None else call_path.hit(task.key, hit,
                                                                           count=position == task.positions[0])
                results.how[position] = "failed earlier" if hit is None else "hit"
            if hit is None:
                call_path.count(FAILED_EARLIER)
            bar.update(computed_elsewhere=True)
        else:
            still.append(task)
    return still


# Per store: owners of claims that a failed map could not release, released by the next map.
_unreleased: dict[StorageConfig, set[str]] = {}


class _Claims:
    """This map's claims on the calls it computes, kept alive by a heartbeat thread."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._store = storage.call_path
        self._ttl_s = storage.config.claim_ttl_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew, name="memostore-claims", daemon=True)

    def take(self, call_hids: Iterable[str]) -> set[str]:
        return self._store.claim(call_hids, self.owner, self._ttl_s)

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl_s / 3):
            try:
                self._store.renew_claims(self.owner, self._ttl_s)
            except StorageError as err:  # the server went away: the map itself reports it
                logger.warning("could not renew the claims of a map: %s", err)

    def __enter__(self) -> _Claims:
        # Claims a failed map of this process could not give back (the server was down): now.
        left = _unreleased.setdefault(self._storage.config, set())
        for owner in list(left):
            self._store.release_claims(owner)
            left.discard(owner)
        self._heartbeat.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._heartbeat.join()
        try:
            # Results first: a waiting map that sees a claim gone looks for the result.
            self._storage.commit()
        finally:
            try:
                self._store.release_claims(self.owner)
            except StorageError as err:
                # The next map of this process releases them, not their expiry claim_ttl_s later.
                _unreleased.setdefault(self._storage.config, set()).add(self.owner)
                logger.warning("the claims of a map stay until the next map releases them: %s", err)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while the batched lookup builds a few objects per item:
    they all live on as the map's results, and with 10,000 items the collector would
    walk the whole heap (every module's objects too) a few times for nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _as_kwargs(op_: Op, item: Any, position: int) -> dict[str, Any]:
    if type(item) is not dict and not isinstance(item, Mapping):
        raise MapOptionError(f"storage.map(op {op_.name!r}): items[{position}] must be a dict of keyword "
                        f"arguments, got {type(item).__name__} {item!r}")
    return dict(item)


def _plan(storage: Storage, op_: Op, kwargs_list: list[dict[str, Any]], results: MapResult,
          retry: bool) -> list[_Task]:
    """Fill ``results`` with the stored calls; return the distinct calls left to compute."""
    keys = []
    version = storage.version_of(op_)
    for position, kwargs in enumerate(kwargs_list):
        try:
            bound = op_.bind((), kwargs)
        except TypeError as err:
            raise MapOptionError(f"storage.map(op {op_.name!r}) items[{position}]: {err}") from None
        bound = pack_arguments(storage, op_.name, bound, op_.collection_params, op_.ignore)
        keys.append(call_identity(op_.name, version, op_.identify_inputs(bound)))
    call_path = storage.call_path
    found, failed = call_path.find_many(keys)
    tasks: dict[str, _Task] = {}
    counted: set[str] = set()  # last_run counts calls: equal items are one call
    for position, key in enumerate(keys):
        hit = found.get(key.hid)
        first = key.hid not in counted
        if hit is not None:
            results[position] = call_path.hit(key, hit, count=first)
            results.how[position] = "hit"
            counted.add(key.hid)
        elif key.hid in failed and not retry:
            results[position] = None  # a recorded failure, not retried unless asked
            results.how[position] = "failed earlier"
            if first:
                counted.add(key.hid)
                call_path.count(FAILED_EARLIER)
        elif key.hid in tasks:
            tasks[key.hid].positions.append(position)
        else:
            tasks[key.hid] = _Task([position], kwargs_list[position], key)
    return list(tasks.values())


def _dispatch(storage: Storage, op_: Op, tasks: list[_Task], results: MapResult, executor: ExecutorSpec,
              n_jobs: int | None, on_error: OnError, bar: _Progress) -> None:
    # Arguments changed in place are refused: by the caller before the calls, by the op after each.
    watched = {id(task): watch(op_, storage, task.key, (), task.kwargs) for task in tasks}
    # One batched load of lazy inputs; Ignore and ValuePointer give the function what they wrap.
    plain_kwargs = [pointed_objects((), kwargs)[1]
                    for kwargs in storage.unwrap([without_ignore((), task.kwargs)[1] for task in tasks])]
    outcomes = _run_all(storage, op_, tasks, plain_kwargs, executor, n_jobs)
    try:
        _store_outcomes(storage, op_, outcomes, watched, results, on_error, bar)
    except BaseException:
        # Calls still running on threads finish as the executor stops; one of them may have
        # changed its argument after this map stopped looking: those Refs reload their values.
        outcomes.close()
        for maybe_changed in watched.values():
            if maybe_changed is not None:
                maybe_changed.forget_changed()
        raise


def _store_outcomes(storage: Storage, op_: Op, outcomes: Iterator[tuple[_Task, _Outcome]],
                    watched: dict[int, Watched | None], results: MapResult, on_error: OnError,
                    bar: _Progress) -> None:
    """Store (or record, or skip) each call's outcome as it arrives; raise the first error under
    ``on_error="raise"``; commit at least every COMMIT_EVERY_S."""
    last_commit = time.monotonic()
    for task, outcome in outcomes:
        if not outcome.infrastructure:
            _refuse_changed(storage, watched[id(task)], outcome, bar)
        if outcome.ok:
            call = record_result(op_, storage, task.key, outcome.result, outcome.started_at, outcome.duration_s)
            for position in task.positions:
                results[position] = call.result()
                results.how[position] = "computed"
        elif outcome.infrastructure or on_error == "raise":
            # The store failing is no failure of the op: never recorded, never skipped.
            if not outcome.infrastructure:
                storage.call_path.count(FAILED)  # a failure not recorded counts in last_run all the same
                storage.commit()
            bar.close()
            raise _exception_of(op_, outcome)
        elif on_error == "record":
            assert outcome.error is not None
            storage.call_path.record_failure(task.key, outcome.error, outcome.started_at, outcome.duration_s)
        else:  # "skip"
            storage.call_path.count(FAILED)
        bar.update(failed=not outcome.ok)
        if time.monotonic() - last_commit >= COMMIT_EVERY_S:
            storage.commit()
            last_commit = time.monotonic()


def _refuse_changed(storage: Storage, watched: Watched | None, outcome: _Outcome, bar: _Progress) -> None:
    """Raise ArgumentChangedError, recording nothing, if the call changed an argument in place
    (even if it raised: its failure would be recorded with the changed value)."""
    if watched is None:
        return
    try:
        watched.check()
    except ArgumentChangedError as err:
        storage.call_path.count(FAILED)
        storage.commit()
        bar.close()
        raise err from outcome.result if isinstance(outcome.result, BaseException) else None


def _run_all(storage: Storage, op_: Op, tasks: list[_Task], plain_kwargs: list[dict[str, Any]],
             executor: MapExecutor, n_jobs: int | None) -> Generator[tuple[_Task, _Outcome], None, None]:
    """Run every task on the executor; yields (task, outcome) as each finishes."""
    if executor.spec is None:
        for task, kwargs in zip(tasks, plain_kwargs, strict=True):
            yield task, _execute_function(op_.plain, kwargs, None)
        return
    workers = n_jobs or os.cpu_count() or 1
    if executor.spec == "threads":
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as threads:
            # Each task runs in a copy of this context: the storage block and the
            # inside-an-op flag carry over, so nested ops are memoized here too.
            futures = {threads.submit(contextvars.copy_context().run, _execute_function, op_.plain, kwargs, None): task
                       for task, kwargs in zip(tasks, plain_kwargs, strict=True)}
            yield from _as_completed(futures, concurrent.futures.as_completed, _cancel_all)
        return
    token = pickling_for_map.set(True)  # the map stores results itself: ops in the payload carry no storage
    try:
        payload = function_bytes(op_.plain)  # code keeps its file: tracebacks name the op's line
    finally:
        pickling_for_map.reset(token)
    config = None if storage.config.db_path is None and storage.config.db_url is None else storage.config
    shipment = Shipment.of(payload, loaded_helpers(op_.func, storage.config.deps_path), op_.name)
    yield from executor.run(shipment, config, list(zip(tasks, plain_kwargs, strict=True)),
                            _execute_pickled)


def _as_completed(futures: dict[Any, _Task], as_completed: Callable[..., Iterable[Any]],
                  cancel: Callable[[Iterable[Any]], Any]) -> Iterator[tuple[_Task, _Outcome]]:
    done = set()
    try:
        for future in as_completed(list(futures)):
            done.add(future)
            yield futures[future], future.result()
    finally:
        # Stopped early (an error under on_error="raise"): drop the work not started.
        cancel([f for f in futures if f not in done])


def _cancel_all(futures: Iterable[Any]) -> None:
    for future in futures:
        future.cancel()


# --- what runs in a worker -------------------------------------------------------

_storages: dict[StorageConfig, Storage] = {}


def _execute_pickled(shipment: Shipment, kwargs: dict[str, Any], config: StorageConfig | None) -> _Outcome:
    """Worker entry point: unpickle the op's function once, run it on ``kwargs``."""
    func = shipment.function()
    storage = None
    if config is not None:
        storage = _storages.get(config)
        if storage is None:
            from memostore.storage import Storage

            storage = _storages[config] = Storage.from_config(config)
    return _execute_function(func, kwargs, storage, pickle_errors=True)


def _execute_function(func: Callable[..., Any], kwargs: dict[str, Any], storage: Storage | None,
                      pickle_errors: bool = False) -> _Outcome:
    started_at = time.time()
    clock = time.perf_counter()
    token = _inside_op.set(True)
    try:
        if storage is not None:
            with storage:
                result = func(**kwargs)
        else:
            result = func(**kwargs)
        return _Outcome(True, result, None, None, started_at, time.perf_counter() - clock)
    except Exception as err:
        error = CallError(f"{type(err).__module__}.{type(err).__qualname__}", str(err),
                          "".join(traceback.format_exception(err)))
        exception = _pickled(err) if pickle_errors else None
        outcome = _Outcome(False, None, error, exception, started_at, time.perf_counter() - clock,
                           infrastructure=is_transient(err))
        if not pickle_errors:
            outcome.result = err  # in this process: the exception itself
        return outcome
    finally:
        _inside_op.reset(token)


def _pickled(err: Exception) -> bytes | None:
    try:
        data: bytes = cloudpickle.dumps(err)
    except Exception:
        return None
    return data


def _exception_of(op_: Op, outcome: _Outcome) -> BaseException:
    if isinstance(outcome.result, BaseException):
        return outcome.result
    if outcome.exception is not None:
        try:
            exception: BaseException = cloudpickle.loads(outcome.exception)
            return exception
        except Exception:
            pass
    assert outcome.error is not None
    return OpFailedError(f"op {op_.name!r} raised {outcome.error.type}: {outcome.error.message}\n"
                         f"{outcome.error.traceback}")


class _Progress:
    """A tqdm bar over the calls to compute, with hits, failures and calls others computed."""

    def __init__(self, name: str, total: int, hits: int, enabled: bool) -> None:
        self.counts = {"hits": hits, "failed": 0, "elsewhere": 0}
        self._bar: Any = None
        if enabled:
            self._bar = _tqdm_class()(total=total, desc=name, unit="call")
            self._bar.set_postfix(hits=hits)

    def update(self, failed: bool = False, computed_elsewhere: bool = False) -> None:
        self.counts["failed"] += failed
        self.counts["elsewhere"] += computed_elsewhere
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix({k: v for k, v in self.counts.items() if v or k == "hits"}, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _tqdm_class() -> Any:
    """tqdm's widget bar where ipywidgets can draw it (Jupyter), its text bar everywhere else.

    ``tqdm.auto`` in a notebook without ipywidgets warns "IProgress not found" and
    shows no bar at all; the text bar, written to stderr, updates in place there too.
    """
    try:
        import ipywidgets  # noqa: F401 - only asks whether the widget bar can be drawn
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    return tqdm
