"""Worker processes run the helpers the map's process versions its op by.

A map ships its op's function by value, but the helpers, classes and
constants it reaches inside ``deps_path`` travel by reference: a worker uses
the module it imported, maybe before the file was edited and the map's
process reloaded it. A kept pool (or a Dask worker) would then compute with
old helpers and the map would file the results under the new version.

So the map sends, with its op, what each tracked helper compiles to in its
own process (``loaded_helpers``); a worker compares its own modules once per
shipment (``check_helpers``) and raises ``StaleWorkerError`` where they
differ. ``storage.map`` then replaces its process pool once and sends the
refused calls again; other executors get the error.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from typing import Any, Sequence

from memostore.deps import Roots, discover
from memostore.errors import StaleWorkerError
from memostore.hashing import content_id
from memostore.running_code import code_shape

Helper = tuple[str, str, str]  # (module, qualified name, fingerprint of the code or value loaded)


def loaded_helpers(func: Any, deps_path: Sequence[str] | None) -> tuple[Helper, ...]:
    """The tracked helpers ``func`` reaches, with what they are in this process; () without ``deps_path``.

    Helpers of ``__main__`` and of functions' local scopes travel by value with the op, so are left out.
    """
    if deps_path is None:
        return ()
    helpers = []
    for dependency in discover(func, Roots(list(deps_path))):
        module, _, qualname = _split(dependency.full_name)
        if module in ("", "__main__", "__mp_main__") or "<locals>" in qualname:
            continue
        helpers.append((module, qualname, fingerprint(_resolve(sys.modules[module], qualname))))
    return tuple(helpers)


def check_helpers(helpers: Sequence[Helper], op_name: str) -> None:
    """Raise StaleWorkerError if a helper loaded in this (worker) process differs from the map's."""
    for module_name, qualname, expected in helpers:
        try:
            module = sys.modules.get(module_name) or importlib.import_module(module_name)
        except ImportError:  # not importable here: the op fails on its own if it needs it
            continue
        if fingerprint(_resolve(module, qualname)) != expected:
            raise StaleWorkerError(
                f"storage.map(op {op_name!r}): worker process {os.getpid()} has {module_name}.{qualname} "
                f"loaded as other code than the map's process: one of them imported {module.__file__} "
                "before that file changed, and its results would be filed under the wrong version. "
                "storage.map replaces its own process pool once; with a Dask cluster restart the "
                "workers (client.restart()), with your own executor start a new one")


def fingerprint(obj: Any) -> str:
    """What a helper computes, as loaded: code (without lines) for functions and classes, else the value."""
    if isinstance(obj, type):
        members = [(name, _member_fingerprint(value)) for name, value in sorted(vars(obj).items())
                   if not name.startswith("__") or isinstance(value, types.FunctionType)]
        return content_id(repr(members))
    return _member_fingerprint(obj)


def _member_fingerprint(value: Any) -> str:
    if isinstance(value, type):
        return fingerprint(value)
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return content_id(repr([_member_fingerprint(f) for f in (value.fget, value.fset, value.fdel)]))
    code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
    if isinstance(code, types.CodeType):
        function = inspect.unwrap(value)
        defaults = [*(getattr(function, "__defaults__", None) or ()),
                    *sorted((getattr(function, "__kwdefaults__", None) or {}).items())]
        return content_id(repr((code_shape(code), [_plain(d) for d in defaults])))
    return content_id(_plain(value))


def _plain(value: Any) -> Any:
    """A constant itself; of another value (which may not encode alike in two processes), its type."""
    return value if _is_constant(value) else f"{type(value).__module__}.{type(value).__qualname__}"


def _is_constant(value: Any) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item) for item in value)
    return type(value) in (type(None), bool, int, float, complex, str, bytes)


def _split(full_name: str) -> tuple[str, str, str]:
    """``module.qualname`` split at the longest module loaded here."""
    parts = full_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in sys.modules:
            return module, ".", ".".join(parts[cut:])
    return "", "", full_name


def _resolve(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj
