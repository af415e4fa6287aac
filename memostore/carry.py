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
import sys
import warnings
from typing import Any, Callable, Iterator

from memostore.callpath import open_block_storage
from memostore.errors import NotMemoizedWarning
from memostore.storage import Storage, StorageConfig, current_storage

# True while storage.map pickles an op's function: the map stores the results itself.
pickling_for_map: contextvars.ContextVar[bool] = contextvars.ContextVar("memostore_pickling_for_map", default=False)
_carried_storages: dict[StorageConfig, Storage] = {}
_carried_ops: dict[tuple[int, StorageConfig], Any] = {}
_rebuilt_ops: dict[tuple[Any, ...], Any] = {}


def config_to_carry(op_name: str) -> StorageConfig | None:
    """The configuration an op pickled now carries: that of the open block's storage,
    if another process can reach it."""
    storage = current_storage() or open_block_storage()
    if storage is None or pickling_for_map.get():
        return None
    if storage.config.db_path is None and storage.config.db_url is None:
        warnings.warn(
            f"op {op_name!r} is sent to another process from a block of an in-memory storage: its calls "
            "there run as the plain function and are not stored; use storage.map(op, items, "
            "executor='processes'), or a storage with a db_path or db_url", NotMemoizedWarning, stacklevel=3)
        return None
    return storage.config


def importable(module: str, qualname: str) -> Any:
    """What ``module.qualname`` names in this process (None if nothing)."""
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def op_by_name(module: str, qualname: str, config: StorageConfig | None) -> Any:
    """Unpickle an importable op, carrying ``config``."""
    importlib.import_module(module)
    found = importable(module, qualname)
    return found if config is None else carrying(found, config)


def op_from_function(op_class: Any, func: Callable[..., Any], options: dict[str, Any], source: str | None,
                     config: StorageConfig | None) -> Any:
    """Unpickle an op sent by value (defined in ``__main__`` or a notebook), carrying ``config``."""
    key = (getattr(func, "__module__", None), getattr(func, "__qualname__", None), source, repr(options))
    rebuilt = _rebuilt_ops.get(key)  # each task brings its own copy of the function: build the op once
    if rebuilt is None:
        rebuilt = _rebuilt_ops[key] = op_class(func, **options)
        if not rebuilt.version_pinned and source is not None and source != rebuilt.source:
            # The source as the sending process read it (a notebook's cells are not on disk here).
            rebuilt.source = source
            rebuilt.version = rebuilt.version_with(())
    return rebuilt if config is None else carrying(rebuilt, config)


def carrying(op_: Any, config: StorageConfig) -> Any:
    """A copy of ``op_`` that, called outside any block, memoizes into the storage of ``config``."""
    carried = _carried_ops.get((id(op_), config))
    if carried is None:
        carried = _carried_ops[(id(op_), config)] = object.__new__(type(op_))
        carried.__dict__.update(op_.__dict__)  # not copy.copy: that would go through __reduce__
        carried._carried = config
    return carried


@contextlib.contextmanager
def carried_storage(config: StorageConfig) -> Iterator[Storage]:
    """A block of the storage of ``config``, opened once per process."""
    storage = _carried_storages.get(config) or _carried_storages.setdefault(config, Storage.from_config(config))
    with storage:  # commits each call as it finishes: the sending process reads it soon after
        yield storage
