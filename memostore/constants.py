"""What a global an op reads is, for its version: plain data (tracked by content), code and
modules and type hints (handled by ``deps``, or not state), state the code writes to (a log, a
cache: left out), or something else, which warns once per op. Used by ``deps.discover``."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import decimal
import dis
import enum
import fractions
import pathlib
import types
import uuid
import warnings
from typing import Any, Iterable, Iterator

from memostore.errors import UntrackedValueWarning
from memostore.hashing import has_content_hasher
from memostore.running_code import loaded_source

CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes)


def short_repr(value: Any, limit: int = 300) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break versioning
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


_DATA_TYPES = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, fractions.Fraction,
               pathlib.PurePath, uuid.UUID, enum.Enum)


def is_data(value: Any) -> bool:
    """Whether ``value`` is plain data memostore hashes by content: numbers, strings, lists, tuples,
    dicts and sets of data, numpy arrays, pandas objects, dataclasses of data, registered types.

    >>> is_data({"lr": 0.1, "layers": [64, 32]}), is_data([open])
    (True, False)
    """
    if type(value) in CONSTANT_TYPES or isinstance(value, _DATA_TYPES):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(is_data(item) for item in value)
    if isinstance(value, dict):
        return all(is_data(k) and is_data(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(is_data(getattr(value, f.name)) for f in dataclasses.fields(value))
    if not has_content_hasher(type(value)):
        return False
    if getattr(getattr(value, "dtype", None), "kind", None) == "O" and hasattr(value, "flat"):  # numpy objects
        return all(is_data(item) for item in value.flat)
    return True


_KNOWN_MODULES = frozenset(("typing", "typing_extensions", "types", "logging", "abc", "collections.abc"))


def is_known_kind(value: Any) -> bool:
    """Code, modules and classes, loggers and type hints: not data, and not what a warning is for."""
    return (callable(value) or isinstance(value, types.ModuleType) or value is Ellipsis
            or type(value).__module__ in _KNOWN_MODULES)


_warned: set[tuple[str, str]] = set()


def warn_untracked(op_name: str, untracked: dict[str, Any]) -> None:
    """Warn once per op and global about what is read but cannot be tracked."""
    for full_name, value in sorted(untracked.items()):
        if (op_name, full_name) in _warned:
            continue
        _warned.add((op_name, full_name))
        warnings.warn(
            f"op {op_name!r} reads the global {full_name} (a {type(value).__module__}.{type(value).__qualname__}), "
            "which memostore cannot track: changing it does not change the op's version, and stored results "
            "made with another value would be reused; pass it to the op as an argument, make it plain data "
            "(numbers, strings, lists, dicts, arrays), or give its type a hasher with register_hasher",
            UntrackedValueWarning, stacklevel=2)


_MUTATING = frozenset(("append", "extend", "insert", "pop", "remove", "clear", "update", "add", "discard",
                       "setdefault", "popitem", "sort", "reverse", "fill", "resize", "put", "appendleft"))


def written_globals(functions: Iterable[Any]) -> set[tuple[str, str]]:
    """(module, name) of the globals the functions' code writes to: ``X.append(...)``, ``X[k] = v``,
    ``del X[k]``, ``global X``."""
    written: set[tuple[str, str]] = set()
    for function in functions:
        module = function.__globals__.get("__name__", "")
        # The text this process loaded (running_code), as versions read it, not the file as it is now.
        text = loaded_source(function)
        try:
            tree = ast.parse(text) if text is not None else None
        except SyntaxError:
            tree = None
        if tree is None:
            written |= {(module, n) for n in _stored_globals(function.__code__)}
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                written |= {(module, n) for n in node.names}
            target = None
            if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
                target = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATING:
                target = node.func.value
            if isinstance(target, ast.Name):
                written.add((module, target.id))
    return written


def _stored_globals(code: types.CodeType) -> Iterator[str]:
    previous = None
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            yield instruction.argval
        elif (previous is not None and previous.opname == "LOAD_GLOBAL"
              and instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and instruction.argval in _MUTATING):
            yield previous.argval
        previous = instruction
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _stored_globals(const)
