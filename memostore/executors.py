"""Where ``storage.map`` sends its calls: a process pool, any
``concurrent.futures.Executor`` or a Dask cluster.

The op's function is cloudpickled once per map into a ``Shipment``; a worker
process loads it once and keeps it by its digest. On Dask a shipment of
64 KiB or more is scattered to every worker once (``broadcast=True``), so
tasks carry only a reference to it, their arguments and the store's
configuration. Each task (one call, or ``chunksize`` calls) is released as
soon as its result is read: the cluster never holds more than the results not
yet read, and a lost worker makes Dask recompute only the calls whose results
the map has not read. Task keys start with the op's name, as the Dask
dashboard groups them.
"""

from __future__ import annotations

import concurrent.futures
import gc
import hashlib
import importlib
import os
import queue
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import cloudpickle

from memostore.errors import MapOptionError, MemostoreError, StaleWorkerError
from memostore.worker_code import Helper, check_helpers

T = TypeVar("T")
Execute = Callable[["Shipment", dict[str, Any], Any], Any]  # (shipment, kwargs, config) -> outcome, in a worker

# The options of dask.distributed.Client.submit a map can pass on; the map sets key and pure itself.
DASK_OPTIONS = frozenset({"retries", "resources", "priority", "workers", "allow_other_workers", "fifo_timeout"})
SCATTER_FROM_BYTES = 64 * 1024  # a smaller op travels in each task: cheaper than a scatter's round trips
_functions: dict[str, Callable[..., Any]] = {}  # in a worker: digest -> the op's function, loaded once
_pools: dict[int, Any] = {}


@dataclass(frozen=True)
class Shipment:
    """The op's function as cloudpickled bytes, with the digest workers keep it under, and the
    tracked helpers it reaches as the map's process has them (see ``worker_code``)."""

    digest: str
    payload: bytes
    helpers: tuple[Helper, ...] = ()
    op_name: str = ""

    @classmethod
    def of(cls, payload: bytes, helpers: tuple[Helper, ...] = (), op_name: str = "") -> Shipment:
        digest = hashlib.blake2b(payload + repr(helpers).encode(), digest_size=16).hexdigest()
        return cls(digest, payload, helpers, op_name)

    def function(self) -> Callable[..., Any]:
        """The shipped function, unpickled once per process, once its helpers here are the map's."""
        func = _functions.get(self.digest)
        if func is None:
            func = cloudpickle.loads(self.payload)
            check_helpers(self.helpers, self.op_name)
            _functions[self.digest] = func
        return func


class _CallsFailed(MemostoreError):
    """Raised in a Dask task whose calls failed when the map asked Dask for ``retries``:
    Dask reruns a task only when it raises. Carries the outcomes back to the map."""


class MapExecutor:
    """An executor of ``storage.map`` with its options, checked before anything runs."""

    def __init__(self, op_name: str, spec: Any, n_jobs: int | None, chunksize: int,
                 options: Mapping[str, Any] | None) -> None:
        self.spec = spec
        self.op_name = op_name
        self.workers = n_jobs or os.cpu_count() or 1
        self.is_dask = _is_dask_client(spec)
        if spec not in (None, "threads", "processes") and not self.is_dask and \
                not isinstance(spec, concurrent.futures.Executor):
            raise MapOptionError(f"storage.map(op {op_name!r}): executor must be None, 'threads', 'processes', "
                            f"a concurrent.futures.Executor or a dask.distributed.Client; got {spec!r}")
        if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
            raise MapOptionError(f"storage.map(op {op_name!r}): chunksize must be a whole number of calls per "
                                 f"task, 1 or more; got {chunksize!r}")
        self.chunksize = chunksize
        self.options = dict(options or {})
        if self.options and not self.is_dask:
            raise MapOptionError(f"storage.map(op {op_name!r}): executor_options are passed to Dask's "
                                 f"Client.submit and need a dask.distributed.Client as executor; got executor="
                                 f"{spec!r}; drop executor_options or pass a Client")
        unknown = sorted(set(self.options) - DASK_OPTIONS)
        if unknown:
            raise MapOptionError(f"storage.map(op {op_name!r}): executor_options {unknown} are not among the Dask "
                                 f"options a map passes on: {sorted(DASK_OPTIONS)}")

    def run(self, shipment: Shipment, config: Any, work: Sequence[tuple[T, dict[str, Any]]],
            execute: Execute) -> Iterator[tuple[T, Any]]:
        """Run ``execute(shipment, kwargs, config)`` for each (task, kwargs) in worker processes;
        yields (task, outcome) as each finishes."""
        chunks = [work[start:start + self.chunksize] for start in range(0, len(work), self.chunksize)]
        if self.is_dask:
            return self._run_dask(shipment, config, chunks, execute)
        if self.spec != "processes":
            return _run_pool(self.spec, shipment, config, chunks, execute)
        pool = _process_pool(self.workers, execute.__module__)
        return _run_pool(pool, shipment, config, chunks, execute,
                         renew=lambda: _process_pool(self.workers, execute.__module__, replace=True))

    def _run_dask(self, shipment: Shipment, config: Any, chunks: list[Sequence[tuple[T, dict[str, Any]]]],
                  execute: Execute) -> Iterator[tuple[T, Any]]:
        from distributed import as_completed  # importable: the executor is a distributed Client

        client = self.spec
        shipped: Any = shipment
        if len(shipment.payload) >= SCATTER_FROM_BYTES:  # once per map, not once per task
            shipped = client.scatter(shipment, broadcast=True, hash=False)
        keys = [f"{self.op_name}-{uuid.uuid4().hex}" for _ in chunks]  # the dashboard groups tasks by op name
        submitted = client.map(run_chunk, [[kwargs for _, kwargs in chunk] for chunk in chunks], key=keys,
                               execute=execute, shipment=shipped, config=config,
                               raise_failed=bool(self.options.get("retries")), **self.options)
        futures = {future: [t for t, _ in chunk] for future, chunk in zip(submitted, chunks, strict=True)}
        completed: Any = as_completed(submitted, loop=client.loop)  # type: ignore[no-untyped-call]
        del submitted
        try:
            while futures:
                batch = completed.next_batch()  # all the finished ones: one gather for them
                read = _read_batch(client, batch, futures)
                del batch  # released: the workers free these results, and a lost worker does not recompute them
                for tasks, outcomes in read:
                    yield from zip(tasks, outcomes, strict=True)
        finally:
            # Stopped early (an error under on_error="raise"): drop the work not started.
            client.cancel(list(futures))
            futures.clear()
            del shipped


def _read_batch(client: Any, batch: list[Any], futures: dict[Any, list[T]]) -> list[tuple[list[T], list[Any]]]:
    """The tasks and outcomes of finished Dask futures, each popped from ``futures``."""
    failed = [future for future in batch if future.status in ("error", "cancelled")]
    finished = [future for future in batch if future not in failed]
    values = client.gather(finished)  # one lost with its worker since is computed again first
    read = [(futures.pop(future), outcomes) for future, outcomes in zip(finished, values, strict=True)]
    return read + [(futures.pop(future), _failed_outcomes(future)) for future in failed]


def run_chunk(kwargs_list: list[dict[str, Any]], execute: Execute, shipment: Shipment, config: Any,
              raise_failed: bool) -> list[Any]:
    """Worker entry point: run the calls of one task; raise if any failed and Dask should retry the task."""
    outcomes = [execute(shipment, kwargs, config) for kwargs in kwargs_list]
    if raise_failed and not all(outcome.ok for outcome in outcomes):
        raise _CallsFailed(outcomes)
    return outcomes


def _failed_outcomes(future: Any) -> list[Any]:
    """The outcomes a Dask task sent back in ``_CallsFailed`` after its last retry."""
    if future.status == "cancelled":
        future.result()  # raises CancelledError: someone cancelled the map's tasks
    error = future.exception()
    if isinstance(error, _CallsFailed):
        return list(error.args[0])
    raise error.with_traceback(future.traceback())  # failed outside the op: not the op's error to record


def _run_pool(pool: concurrent.futures.Executor, shipment: Shipment, config: Any,
              chunks: list[Sequence[tuple[T, dict[str, Any]]]], execute: Execute,
              renew: Callable[[], concurrent.futures.Executor] | None = None) -> Iterator[tuple[T, Any]]:
    """Run the chunks on a concurrent.futures pool, dropping each future once read. A chunk whose
    worker runs other helpers than this process goes once to a new pool, made by ``renew``."""
    finished: queue.SimpleQueue[concurrent.futures.Future[list[Any]]] = queue.SimpleQueue()
    futures: dict[concurrent.futures.Future[list[Any]], tuple[Sequence[tuple[T, dict[str, Any]]], Any]] = {}

    def submit(executor: concurrent.futures.Executor, chunk: Sequence[tuple[T, dict[str, Any]]]) -> None:
        future = executor.submit(run_chunk, [kwargs for _, kwargs in chunk], execute, shipment, config, False)
        futures[future] = (chunk, executor)
        future.add_done_callback(finished.put)

    for chunk in chunks:
        submit(pool, chunk)
    renewed: concurrent.futures.Executor | None = None
    try:
        while futures:
            future = finished.get()
            chunk, executor = futures.pop(future)
            try:
                outcomes = future.result()
            except StaleWorkerError as err:
                if executor is renewed:
                    raise _still_stale(err) from err
                if renew is None:
                    raise
                renewed = renewed or renew()
                submit(renewed, chunk)
                continue
            finally:
                del future
            yield from zip([task for task, _ in chunk], outcomes, strict=True)
    finally:
        for future in futures:  # stopped early: drop the work not started
            future.cancel()


def _still_stale(err: StaleWorkerError) -> StaleWorkerError:
    return StaleWorkerError(f"{err.args[0].split(': one of them')[0]}: it still differs in a new process "
                            "pool, which imports it from its file as it is now, so this process runs an "
                            "older version of it. Reload that module here (importlib.reload, or %autoreload "
                            "in IPython) or restart the process or kernel")


def _process_pool(workers: int, entry_module: str, replace: bool = False) -> concurrent.futures.Executor:
    """A pool of ``workers`` processes kept for later maps (loky's, which pickles with cloudpickle).

    Our own instance, not loky's global reusable one, which joblib.Parallel
    owns and expects to have created itself. Every worker starts with
    ``_start_worker``, all at once, not one at a time as first calls arrive.
    """
    from joblib.externals.loky import ProcessPoolExecutor

    pool = _pools.get(workers)
    if replace and pool is not None:
        pool.shutdown(wait=False)
        pool = None
    if pool is None or getattr(getattr(pool, "_flags", None), "broken", None):
        pool = _pools[workers] = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                                     initargs=(entry_module,))
    executor: concurrent.futures.Executor = pool
    return executor


def _start_worker(entry_module: str) -> None:
    """Import what the map's calls run (memostore and SQLAlchemy: about half a second),
    then set those objects aside from the garbage collector: loky collects after a
    worker's first call, which would otherwise walk them all (tens of ms) then."""
    importlib.import_module(entry_module)
    gc.freeze()


def _is_dask_client(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "submit")


def check_items(op_name: str, items: Any) -> None:
    """Refuse ``storage.map`` items that are not a list of calls, before iterating them (a dict or a string would)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        one = "; for one call, wrap the dict in a list" if isinstance(items, Mapping) else ""
        raise MapOptionError(f"storage.map(op {op_name!r}): items must be a list (any iterable) of dicts of "
                             f"keyword arguments, one per call, got {type(items).__name__} {items!r}; write e.g. "
                             f"[{{'x': 1}}, {{'x': 2}}]{one}")
