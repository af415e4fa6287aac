"""Which helpers, classes and constants an op reaches inside ``deps_path``.

Discovery is static: the global names a function's code (and its nested
code) mentions are resolved in its module; functions and classes defined
inside the tracked roots are followed recursively (a class through its
methods), module attributes reached as ``module.name`` too, and plain
constants (numbers, strings, tuples of them...) are recorded by value. Code
outside the roots (libraries) is never followed. Returns data only.

A dependency is named relative to its root (``helper`` for ``__main__.helper``
under ``deps_path="__main__"`` and for ``ops.helper`` under
``deps_path="ops"``; ``helpers.scale`` for ``proj.helpers.scale`` under
``"proj"`` or under the ``proj`` directory), so a module run as a script and
the same module imported get one version. Two dependencies whose relative
names collide keep their full names. Code is fingerprinted by its canonical
form (``canonical.py``), the one the op's own source gets.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from memostore.canonical import bytecode_note, canonical_code
from memostore.hashing import content_id
from memostore.running_code import loaded_source

F = TypeVar("F", bound=Callable[..., Any])

_CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes)

# Helpers marked with @track, by __name__: code that names one in a string
# (``getattr(module, "helper")``, ``REGISTRY["helper"]``) depends on it.
_tracked: dict[str, dict[str, Any]] = {}  # name -> module -> the latest definition


def track(func: F) -> F:
    """Mark a helper that ops reach in ways static discovery cannot see.

    Discovery follows the names code uses directly. A helper looked up by
    name, as in ``getattr(helpers, "normalize")``, is found when it is
    marked with ``@track`` and its name appears as a string in the op (or in
    a helper the op reaches). It must still be defined inside ``deps_path``.

    >>> @track
    ... def normalize(x):
    ...     return x / 10
    >>> normalize(5)
    0.5
    """
    _tracked.setdefault(func.__name__, {})[func.__module__] = func
    return func


@dataclasses.dataclass(frozen=True)
class Dependency:
    """One thing an op's result depends on, besides the op's own code."""

    name: str  # qualname relative to its root, or module.NAME for a constant, relative too
    kind: str  # "function", "class" or "constant"
    fingerprint: str  # what the version hashes: canonical code, or the constant's content id
    source: str  # what a diff shows: source text, or NAME = repr(value)
    full_name: str  # the absolute module.qualname or module.NAME (what memostore 0.1 recorded)


class Roots:
    """The tracked part of the code: module names and directories.

    >>> Roots(["__main__"]).contains_module("__main__")
    True
    """

    def __init__(self, roots: str | Sequence[str]) -> None:
        items = [roots] if isinstance(roots, str) else list(roots)
        self.names = tuple(r for r in items if not _looks_like_path(r))
        self.dirs = tuple(str(Path(r).resolve()) for r in items if _looks_like_path(r))

    def contains_module(self, module_name: str | None) -> bool:
        """Whether code of this module is tracked."""
        return self.relative_module(module_name) is not None

    def relative_module(self, module_name: str | None) -> str | None:
        """The module's dotted name inside its root ("" for the root itself); None if untracked.

        >>> Roots(["proj"]).relative_module("proj.helpers"), Roots("__main__").relative_module("__main__")
        ('helpers', '')
        """
        if not module_name:
            return None
        names = [n for n in self.names if module_name == n or module_name.startswith(n + ".")]
        if names:
            return module_name[len(max(names, key=len)) + 1:]
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        if path and self.dirs:
            resolved = Path(path).resolve()
            for directory in self.dirs:
                if str(resolved).startswith(directory + os.sep):
                    parts = list(resolved.relative_to(directory).with_suffix("").parts)
                    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        return None

    def relative_name(self, module_name: str, name: str) -> str:
        """``name`` (a qualname) of a tracked module, prefixed by the module's relative name."""
        relative = self.relative_module(module_name)
        return f"{relative}.{name}" if relative else name


def _looks_like_path(root: str) -> bool:
    return os.sep in root or root.endswith(".py") or os.path.isdir(root)


def discover(func: Callable[..., Any], roots: Roots, former: bool = False) -> list[Dependency]:
    """Everything ``func`` reaches inside ``roots``, sorted by name (``func`` itself left out).

    ``former``: as memostore 0.1 found them, module attributes such as ``__file__`` included,
    to recognize the versions it stored.
    """
    found: dict[str, Dependency] = {}
    seen: set[int] = {id(func)}
    stack: list[Any] = [func]
    while stack:
        obj = stack.pop()
        for name, value, module in _references(obj):
            if id(value) in seen:
                continue
            if isinstance(value, (types.FunctionType, type)) and roots.contains_module(value.__module__):
                seen.add(id(value))
                dependency = _code_dependency(value, roots)
                found[dependency.full_name] = dependency
                stack.append(value)
            elif _is_constant(value) and roots.contains_module(module) and (former or not _is_module_dunder(name)):
                found[f"{module}.{name}"] = Dependency(roots.relative_name(module, name), "constant",
                                                       content_id(value), f"{name} = {value!r}",
                                                       f"{module}.{name}")
    return _unique_names(found.values())


def _unique_names(dependencies: Iterable[Dependency]) -> list[Dependency]:
    """Sorted by name; dependencies whose relative names collide keep their full names."""
    by_name: dict[str, list[Dependency]] = {}
    for dependency in dependencies:
        by_name.setdefault(dependency.name, []).append(dependency)
    unique = [d if len(group) == 1 else dataclasses.replace(d, name=d.full_name)
              for group in by_name.values() for d in group]
    return sorted(unique, key=lambda d: d.name)


def _references(obj: Any) -> Iterator[tuple[str, Any, str]]:
    """(name, value, module of the referencing code) for each global an object's code names."""
    functions = [obj] if isinstance(obj, types.FunctionType) else _methods(obj)
    for function in functions:
        function = inspect.unwrap(function)
        code = getattr(function, "__code__", None)
        namespace = getattr(function, "__globals__", {})
        module = namespace.get("__name__", "")
        if code is None:
            continue
        names = set(_code_names(code))
        for text in sorted(_string_constants(code) & _tracked.keys()):
            for helper in _tracked[text].values():
                yield text, helper, module
        for name in sorted(names):
            if name not in namespace:
                continue
            value = namespace[name]
            value = getattr(value, "func", value)  # an Op: follow its function
            yield name, value, module
            if isinstance(value, types.ModuleType):
                for attribute in sorted(names):
                    if hasattr(value, attribute):
                        yield attribute, getattr(value, attribute), value.__name__


def _methods(cls: Any) -> list[Any]:
    if not isinstance(cls, type):
        return []
    members: list[Any] = []
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            members.extend(f for f in (value.fget, value.fset, value.fdel) if f is not None)
            continue
        if isinstance(value, types.FunctionType):
            members.append(value)
    return members


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _string_constants(code: types.CodeType) -> set[str]:
    found = {c for c in code.co_consts if isinstance(c, str)}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _string_constants(const)
    return found


def _is_module_dunder(name: str) -> bool:
    """``__file__``, ``__name__``...: set by the import system, not by the code, so not part of a version
    (``__file__`` would tie versions to the checkout's location, ``__name__`` to the entry point)."""
    return name.startswith("__") and name.endswith("__")


def _is_constant(value: Any) -> bool:
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item) for item in value)
    return type(value) in _CONSTANT_TYPES


def _code_dependency(obj: Any, roots: Roots) -> Dependency:
    kind = "class" if isinstance(obj, type) else "function"
    source = loaded_source(obj) or ""
    fingerprint = canonical_code(source) if source else None
    if fingerprint is None:
        # Bytecode differs between Python releases: the note tells ``explain`` why versions differ.
        fingerprint = "bytecode:" + content_id(_bytecode_of(obj))
        source = source or bytecode_note()
    return Dependency(roots.relative_name(obj.__module__, obj.__qualname__), kind, fingerprint, source,
                      f"{obj.__module__}.{obj.__qualname__}")


def _bytecode_of(obj: Any) -> Any:
    functions = [obj] if isinstance(obj, types.FunctionType) else _methods(obj)
    return [(f.__qualname__, f.__code__.co_code, repr(f.__code__.co_consts), f.__code__.co_names)
            for f in functions]
