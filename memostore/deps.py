"""Which helpers, classes and constants an op reaches inside ``deps_path``.

Discovery is static: the global names a function's code (and its nested
code) mentions are resolved in its module; functions and classes defined
inside the tracked roots are followed recursively (a class through its
methods), module attributes reached as ``module.name`` too, and plain
constants (numbers, strings, and plain data: lists, dicts, sets, numpy
arrays...) are recorded by content. A container the tracked code writes to
(``RUNS.append``, ``CACHE[k] = v``) is state, not a constant, and is left out;
anything else it reads that is neither code nor data (a connection, a lock)
warns once per op. Code outside the roots (libraries) is never followed.

An op made inside a function (a closure) also depends on the values it
captured: each is recorded by content under its variable's name, with or
without roots, and a captured function by its code (``captured``).

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
import functools
import inspect
import os
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from memostore.canonical import bytecode_note, canonical_code
from memostore.constants import CONSTANT_TYPES, is_data, is_known_kind, short_repr, warn_untracked, written_globals
from memostore.errors import OpDefinitionError, UnhashableValueError
from memostore.hashing import content_id
from memostore.running_code import loaded_source

F = TypeVar("F", bound=Callable[..., Any])


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
    kind: str  # "function", "class", "constant", or "captured" (a value a closure holds)
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


def discover(func: Callable[..., Any], roots: Roots, former: bool = False, op_name: str | None = None,
             hashed: dict[int, tuple[Any, str]] | None = None) -> list[Dependency]:
    """Everything ``func`` reaches inside ``roots``, sorted by name (``func`` itself left out).

    What ``func``'s own closure captured is not here: it is taken once, when the op is
    defined (``captured``); functions it captured are followed for the globals they read.
    ``former``: as memostore 0.1 found them, module attributes such as ``__file__`` included,
    to recognize the versions it stored. ``hashed`` keeps content ids by object id between calls
    (a large array read by many ops is hashed once).
    """
    found = _Discovery(roots, former, op_name or str(getattr(func, "__name__", func)), hashed)
    found.run(func)
    return _unique_names(found.found.values())


def captured(func: Callable[..., Any], op_name: str | None = None) -> list[Dependency]:
    """The values ``func``'s closure captured (and the closures of functions it captured), by name;
    a captured function by its code. Raises OpDefinitionError for a value that cannot be hashed.

    >>> def make(k):
    ...     def scale(x):
    ...         return x * k
    ...     return scale
    >>> [(d.name, d.source) for d in captured(make(3))]
    [('k', 'k = 3')]
    """
    op_name = op_name or str(getattr(func, "__name__", func))
    found: dict[str, Dependency] = {}
    seen: set[int] = {id(func)}
    stack: list[tuple[Any, str]] = [(func, "")]
    while stack:
        obj, prefix = stack.pop()
        for dependency, followed in _captured(obj, prefix, None, op_name, seen, None, values=True):
            found[dependency.full_name] = dependency
            if followed is not None:
                stack.append((followed, dependency.name + "."))
    return _unique_names(found.values())


def captured_by(op: Any) -> list[Dependency]:
    """What ``op``'s function captured, taken once (kept on the op as ``_captured``).

    A cell still unset (an inner function defined after the op, or the op itself while it is
    being decorated) is read again on each use until every cell is set.
    """
    kept = op.__dict__.get("_captured")
    if kept is not None:
        return list(kept)
    found = captured(op.func, op.name)
    if all(_is_set(cell) for f in _unwrap_chain(op.func) for cell in f.__closure__ or ()):
        op._captured = tuple(found)
    return found


def _is_set(cell: Any) -> bool:
    try:
        return cell.cell_contents is not cell  # reading an unset cell raises
    except ValueError:
        return False


class _Discovery:
    """One walk of ``discover``: code and constants found, containers read and written, what warns."""

    def __init__(self, roots: Roots, former: bool, op_name: str, hashed: dict[int, tuple[Any, str]] | None):
        self.roots, self.former, self.op_name, self.hashed = roots, former, op_name, hashed
        self.found: dict[str, Dependency] = {}
        self.data: dict[str, tuple[str, str]] = {}  # full name -> (module, name) of containers read
        self.untracked: dict[str, Any] = {}
        self.visited: list[Any] = []

    def run(self, func: Callable[..., Any]) -> None:
        seen: set[int] = {id(func)}
        # (object, name prefix, whether its closure is the op's own: taken at definition, not here)
        stack: list[tuple[Any, str, bool]] = [(func, "", True)]
        while stack:
            obj, prefix, own = stack.pop()
            self.visited.append(obj)
            for dependency, followed in _captured(obj, prefix, self.roots, self.op_name, seen, self.hashed,
                                                  values=not own):
                if not own:
                    self.found[dependency.full_name] = dependency
                if followed is not None:
                    stack.append((followed, dependency.name + ".", own))
            for name, value, module in _references(obj):
                if id(value) in seen:
                    continue
                if isinstance(value, (types.FunctionType, type)) and self.roots.contains_module(value.__module__):
                    seen.add(id(value))
                    dependency = _code_dependency(value, self.roots)
                    self.found[dependency.full_name] = dependency
                    stack.append((value, dependency.name + ".", False))
                elif self.roots.contains_module(module) and (self.former or not _is_module_dunder(name)):
                    self.constant(name, value, module)
        self.finish()

    def constant(self, name: str, value: Any, module: str) -> None:
        """A global of the roots that is not code: tracked by value, by content, or warned about."""
        key, relative = f"{module}.{name}", self.roots.relative_name(module, name)
        if _is_constant(value):
            self.found[key] = Dependency(relative, "constant", content_id(value), f"{name} = {value!r}", key)
        elif self.former or is_known_kind(value):
            return
        elif is_data(value):
            try:
                self.found[key] = _data_dependency(relative, value, module, self.hashed)
                self.data[key] = (module, name)
            except UnhashableValueError:
                self.untracked[key] = value
        else:
            self.untracked[key] = value

    def finish(self) -> None:
        if self.data:
            written = set().union(*(written_globals(_functions_of(obj)) for obj in self.visited))
            for key, module_name in self.data.items():
                if module_name in written:  # state the code keeps (a log, a cache), not a constant it reads
                    del self.found[key]
        warn_untracked(self.op_name, self.untracked)


def _captured(obj: Any, prefix: str, roots: Roots | None, op_name: str, seen: set[int],
              hashed: dict[int, tuple[Any, str]] | None, values: bool) -> Iterator[tuple[Dependency, Any]]:
    """(dependency, function or class to follow or None) for each value in the closures of ``obj``'s code;
    ``values`` False: the functions and classes only (nothing is hashed).

    Skipped: unset cells (a recursive inner function before its definition ends), ``__class__``
    (what ``super()`` reads), the op itself, and a function a decorator wraps (its code is the op's).
    """
    if not isinstance(obj, types.FunctionType):
        return  # a class: its methods' closures are the class machinery's (dataclass, super())
    chain = _unwrap_chain(obj)
    seen.update(id(f) for f in chain)
    for function in chain:
        for var, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            value = value.func if hasattr(value, "version_with") and hasattr(value, "func") else value
            if var == "__class__" or id(value) in seen:
                continue
            name, full_name = prefix + var, f"{function.__module__}.{function.__qualname__}.{var}"
            if isinstance(value, types.FunctionType) or (isinstance(value, type) and _is_own_code(value, roots)):
                seen.add(id(value))
                yield dataclasses.replace(_code_dependency(value, roots), name=name, full_name=full_name), value
                continue
            if not values:
                continue
            if _is_callable_object(value):  # a tool the op calls (a logger, a counter): by its type, not state
                yield Dependency(name, "captured", "callable:" + _qualified(type(value)),
                                 f"{var} = <a {_qualified(type(value))}>", full_name), None
                continue
            try:
                fingerprint = _hashed(value, hashed)
            except UnhashableValueError as err:
                raise OpDefinitionError(
                    f"op {op_name!r} captured {var!r} from the function that made it, and memostore cannot hash "
                    f"its value, so calls with different values of {var!r} would share results ({err}); pass "
                    f"{var!r} to the op as an argument (and ignore=[{var!r}] if it does not change results)"
                ) from None
            yield Dependency(name, "captured", fingerprint, f"{var} = {short_repr(value)}", full_name), None


def _is_callable_object(value: Any) -> bool:
    return (callable(value) and not isinstance(value, (type, functools.partial)) and not is_data(value)
            and not isinstance(value, (types.BuiltinFunctionType, types.MethodType)))


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _functions_of(obj: Any) -> list[Any]:
    """The functions of a function (itself and those it wraps) or of a class (its methods)."""
    tops = [obj] if isinstance(obj, types.FunctionType) else _methods(obj)
    return [f for top in tops for f in _unwrap_chain(top)]


def _unwrap_chain(function: Any) -> list[Any]:
    """``function`` and the functions it wraps (``functools.wraps`` sets ``__wrapped__``)."""
    chain = [function]
    while isinstance(getattr(chain[-1], "__wrapped__", None), types.FunctionType) and len(chain) < 100:
        chain.append(chain[-1].__wrapped__)
    return [f for f in chain if isinstance(f, types.FunctionType)]


def _is_own_code(cls: type, roots: Roots | None) -> bool:
    """A class defined inside a function, or inside the roots: its code counts (a library's by its name)."""
    return "<locals>" in cls.__qualname__ or (roots is not None and roots.contains_module(cls.__module__))


def _hashed(value: Any, hashed: dict[int, tuple[Any, str]] | None) -> str:
    """``content_id(value)``, kept in ``hashed`` by object id."""
    if hashed is None:
        return content_id(value)
    entry = hashed.get(id(value))
    if entry is None or entry[0] is not value:
        entry = hashed[id(value)] = (value, content_id(value))
    return entry[1]


def _data_dependency(name: str, value: Any, module: str, hashed: dict[int, tuple[Any, str]] | None) -> Dependency:
    """A module-level container or array, by content; what a diff shows is its repr (cut when long)."""
    variable = name.rpartition(".")[2]
    return Dependency(name, "constant", _hashed(value, hashed), f"{variable} = {short_repr(value)}",
                      f"{module}.{variable}")


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
    return type(value) in CONSTANT_TYPES


def _code_dependency(obj: Any, roots: Roots | None) -> Dependency:
    kind = "class" if isinstance(obj, type) else "function"
    source = loaded_source(obj) or ""
    fingerprint = canonical_code(source) if source else None
    if fingerprint is None:
        # Bytecode differs between Python releases: the note tells ``explain`` why versions differ.
        fingerprint = "bytecode:" + content_id(_bytecode_of(obj))
        source = source or bytecode_note()
    full_name = f"{obj.__module__}.{obj.__qualname__}"
    name = full_name if roots is None else roots.relative_name(obj.__module__, obj.__qualname__)
    return Dependency(name, kind, fingerprint, source, full_name)


def _bytecode_of(obj: Any) -> Any:
    functions = [obj] if isinstance(obj, types.FunctionType) else _methods(obj)
    return [(f.__qualname__, f.__code__.co_code, repr(f.__code__.co_consts), f.__code__.co_names)
            for f in functions]
