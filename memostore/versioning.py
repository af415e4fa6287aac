"""An op's version id: what its code computes, not how it is written.

================================  ============================================
goes into the version             stays out
================================  ============================================
the function's code, in the       comments, blank lines, formatting,
canonical form of                 docstrings (the function's and nested ones),
``canonical.py``: its name,       its decorators, type annotations, and which
parameters and body               Python release parsed it
a ``NewArgDefault(x)`` parameter  the parameter itself: it is dropped and its
as the code it replaces           uses in the body read ``x``, so adding it
                                  reproduces the old version exactly
``salt`` (the op's output names)
with ``deps_path``: each helper,  where the module was run from: names are
class and constant reached, by    relative to their root (``helper``, not
name and canonical form or value  ``__main__.helper`` or ``ops.helper``)
(containers and arrays by
content)
what a closure captured, with or  a function a decorator wraps (its code is
without ``deps_path``: values by  the op's), ``super()``'s ``__class__``, the
content, functions by code,       op itself, a callable object's state
callable objects by type
================================  ============================================

    version = content_id(("op version 2", canonical code, salt,
                          ((dependency name, fingerprint), ...)))

The same code gets the same version under every Python from 3.10 on.
Where the source cannot be read (code built by ``exec`` without a file, say)
the version hashes the bytecode, names and constants instead; bytecode
changes with the Python release, so such ops (and ops reaching such helpers)
still recompute after a Python upgrade, and ``storage.explain`` says so.
Versions made by memostore 0.1's formula are recognized by ``former.py``.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, Callable, Mapping, Sequence

from memostore.canonical import canonical_code, code_fingerprint
from memostore.deps import Dependency
from memostore.errors import OpNameConflictError
from memostore.former import former_version_ids
from memostore.hashing import content_id
from memostore.running_code import loaded_source

VERSION_FORMULA = "op version 2"


def function_source(func: Callable[..., Any]) -> str | None:
    """The function's source text, or None where Python cannot find it.

    Raises StaleCodeError if its file no longer holds the code loaded (see ``running_code``).
    """
    return loaded_source(func)


def version_id(
    func: Callable[..., Any],
    new_arg_defaults: Mapping[str, Any] | None = None,
    salt: str = "",
    source: str | None = None,
    dependencies: Sequence[Dependency] = (),
) -> str:
    """The version id of ``func``: 32 hex digits.

    ``new_arg_defaults`` maps each ``NewArgDefault`` parameter to its default
    value. ``source`` overrides the text read with ``inspect.getsource``.
    ``dependencies`` (from ``deps.discover``) fold in the helpers, classes and
    constants the function reaches.

    >>> def add_one(x):
    ...     return x + 1
    >>> len(version_id(add_one))
    32
    """
    text = source if source is not None else function_source(func)
    normalized = None if text is None else canonical_code(text, new_arg_defaults)
    if normalized is None:
        normalized = "bytecode:" + content_id(code_fingerprint(getattr(func, "__code__", None)))
    reached = tuple((d.name, d.fingerprint) for d in dependencies)
    return content_id((VERSION_FORMULA, normalized, salt, reached))


def former_ids(
    func: Callable[..., Any],
    new_arg_defaults: Mapping[str, Any] | None = None,
    salt: str = "",
    source: str | None = None,
    dependencies: Sequence[Dependency] | None = None,
) -> set[str]:
    """The ids memostore 0.1 gave this code, under any Python and entry point.

    ``dependencies`` None means the storage tracks no ``deps_path``. Calls
    stored under one of these ids are this version's calls.
    """
    text = source if source is not None else function_source(func)
    return former_version_ids(func, new_arg_defaults or {}, salt, text, dependencies)


# The latest definition of each op in this process, by name: what
# ``storage.stale_calls()`` compares stored versions against.
_current_ops: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
# Every live op by name, to tell a redefinition (same function) from a second function.
_live_ops: dict[str, weakref.WeakSet[Any]] = {}


def note_current_op(name: str, op: Any) -> None:
    """Remember ``op`` (with ``module`` and ``qualname`` attributes) as the current definition of ``name``."""
    _current_ops[name] = op
    _live_ops.setdefault(name, weakref.WeakSet()).add(op)


def live_functions(name: str) -> set[tuple[str, str]]:
    """The (module, qualname) of every op still alive in this process under ``name``."""
    ops = _live_ops.get(name)
    if ops is None:
        return set()
    functions = {(op.module, op.qualname) for op in ops}
    if len(functions) > 1:
        gc.collect()  # an op kept only by a reference cycle is gone, not live
        functions = {(op.module, op.qualname) for op in ops}
    return functions


def live_ops(name: str) -> list[Any]:
    """Every op still alive in this process under ``name`` (the latest definition may be gone while
    an earlier one, of this or another function, lives on)."""
    return list(_live_ops.get(name, ()))


def current_ops() -> dict[str, Any]:
    """Name -> the latest op definition still alive in this process (see ``current_op`` for one name)."""
    return dict(_current_ops)


def current_op(name: str) -> Any:
    """The live op named ``name`` in this process, or None; raises OpNameConflictError if two functions share it."""
    op = _current_ops.get(name)
    if op is not None:
        functions = live_functions(name)
        if len(functions) > 1:
            raise OpNameConflictError(
                f"op name {name!r} is used by {len(functions)} different functions in this process: "
                f"{', '.join(sorted(f'{m}.{q}' for m, q in functions))}; give each its own name with "
                "@op(name='...')")
    return op

