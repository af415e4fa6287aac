"""How an op travels to worker processes with the storage of the block it left.

An op pickled inside a ``with storage:`` block (by joblib, a process pool)
carries the storage's configuration; in the worker, called outside any
block, it opens that storage once and memoizes into it, committing each
call, so the sending process reads the results. An in-memory storage cannot
be reached from another process: pickling warns and points to
``storage.map``. Ops in ``storage.map``'s own payload carry nothing: the map
stores results itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import io
import sys
import types
import warnings
from collections import ChainMap
from typing import Any, Callable, Iterator, NamedTuple

import cloudpickle

from memostore.callpath import add_to_tally, open_block_storage
from memostore.config import StorageConfig
from memostore.deps import captured_by
from memostore.errors import NotMemoizedWarning
from memostore.hashing import content_id
from memostore.modes import noop_storage
from memostore.storage import Storage, current_storage

# True while storage.map pickles an op's function: the map stores the results itself.
pickling_for_map: contextvars.ContextVar[bool] = contextvars.ContextVar("memostore_pickling_for_map", default=False)
_carried_storages: dict[StorageConfig, Storage] = {}
CARRIED_OPS_KEPT = 1000  # ops rebuilt for carried storages and runs, kept for the tasks that follow
_carried_ops: dict[tuple[int, Carried, str | None], Any] = {}
_rebuilt_ops: dict[tuple[Any, ...], Any] = {}


def _code_keeping_file(code: types.CodeType) -> Any:
    """cloudpickle's reduction of ``code``, with its real file name instead of ``<dynamic-code>``."""
    assert _cloudpickle_code_reduce is not None
    constructor, args = _cloudpickle_code_reduce(code)
    return constructor, tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)


# cloudpickle names the file of code it pickles by value "<dynamic-code>" (for reproducible pickles);
# kept, a traceback recorded in a worker names the op's file and line.
_cloudpickle_code_reduce: Callable[[types.CodeType], Any] | None = getattr(
    getattr(cloudpickle, "cloudpickle", None), "_code_reduce", None)


class _FileKeepingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    dispatch_table = ChainMap({types.CodeType: _code_keeping_file}, cloudpickle.Pickler.dispatch_table) \
        if _cloudpickle_code_reduce is not None else cloudpickle.Pickler.dispatch_table


def function_bytes(func: Callable[..., Any]) -> bytes:
    """``func`` cloudpickled for a worker (``cloudpickle.loads`` reads it), its code keeping its file names."""
    with io.BytesIO() as file:
        _FileKeepingPickler(file, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(func)
        return file.getvalue()


class Carried(NamedTuple):
    """What an op sent to a worker process from a block carries: the storage's configuration,
    and the file where the worker adds what it computed and found to the block's ``last_run``."""

    config: StorageConfig
    tally: str | None = None


def to_carry(op_: Any) -> tuple[Carried | None, str | None]:
    """What an op pickled now carries: the open block's storage configuration (and run tally),
    if another process can reach it, and the op's version there.

    The version travels too because a worker may not see the code the sender saw (a
    script's helpers, a notebook's cells): hashing their bytecode there would make
    another version of the same code, and recompute what the sender stored.
    """
    storage = current_storage() or open_block_storage()
    if storage is None or pickling_for_map.get() or noop_storage() is not None:  # noop: the plain function there
        return None, None
    if storage.config.db_path is None and storage.config.db_url is None:
        warnings.warn(
            f"op {op_.name!r} is sent to another process from a block of an in-memory storage: its calls "
            "there run as the plain function and are not stored; use storage.map(op, items, "
            "executor='processes'), or a storage with a db_path or db_url", NotMemoizedWarning, stacklevel=3)
        return None, None
    return Carried(storage.config, storage.call_path.worker_tally()), storage.version_of(op_)


def importable(module: str, qualname: str) -> Any:
    """What ``module.qualname`` names in this process (None if nothing)."""
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def op_by_name(module: str, qualname: str, config: Carried | None, version: str | None = None) -> Any:
    """Unpickle an importable op, carrying ``config`` and the sender's ``version``."""
    importlib.import_module(module)
    found = importable(module, qualname)
    return found if config is None else carrying(found, config, version)


def op_from_function(op_class: Any, func: Callable[..., Any] | bytes, options: dict[str, Any], source: str | None,
                     config: Carried | None, version: str | None = None) -> Any:
    """Unpickle an op sent by value (defined in ``__main__`` or a notebook), carrying ``config`` and ``version``.

    The function comes cloudpickled: plain pickle would look ``__main__.f`` up by
    name and find the op, not the function.
    """
    # Two closures of one factory share module, qualname and source: their bytes tell them apart.
    digest = content_id(func) if isinstance(func, bytes) else id(func)
    if isinstance(func, bytes):
        func = cloudpickle.loads(func)
    key = (getattr(func, "__module__", None), getattr(func, "__qualname__", None), source, repr(options), digest)
    rebuilt = _rebuilt_ops.get(key)  # each task brings its own copy of the function: build the op once
    if rebuilt is None:
        rebuilt = _rebuilt_ops[key] = op_class(func, **options)
        if not rebuilt.version_pinned and source is not None and source != rebuilt.source:
            # The source as the sending process read it (a notebook's cells are not on disk here).
            rebuilt.source = source
            rebuilt.version = rebuilt.version_with(captured_by(rebuilt))
    return rebuilt if config is None else carrying(rebuilt, config, version)


def carrying(op_: Any, config: Carried, version: str | None = None) -> Any:
    """A copy of ``op_`` that, called outside any block, memoizes into the storage of ``config``
    under the sender's ``version``."""
    carried = _carried_ops.get((id(op_), config, version))
    if carried is None:
        if len(_carried_ops) >= CARRIED_OPS_KEPT:  # each run of the sender has a tally of its own
            _carried_ops.clear()
        carried = _carried_ops[(id(op_), config, version)] = object.__new__(type(op_))
        carried.__dict__.update(op_.__dict__)  # not copy.copy: that would go through __reduce__
        carried._carried = config
        if version is not None and not op_.version_pinned:
            carried.version, carried.version_pinned = version, True
    return carried


@contextlib.contextmanager
def carried_storage(carried: Carried) -> Iterator[Storage]:
    """A block of the carried storage, opened once per process; what it computed and found
    is added to the sending block's run (its ``last_run``)."""
    config = carried.config
    storage = _carried_storages.get(config) or _carried_storages.setdefault(config, Storage.from_config(config))
    try:
        with storage:  # commits each call as it finishes: the sending process reads it soon after
            yield storage
    finally:
        if carried.tally is not None and storage.last_run is not None:
            add_to_tally(carried.tally, storage.last_run)
