"""Refuse a call whose argument values are not the values its identity names.

A call is filed under the content ids of its arguments. An in-memory Ref
keeps the Python object it was made from (or loaded into), so two things can
make that object differ from the value its content id names:

- the caller changed it in place (``df = storage.unwrap(ref)`` then
  ``df.drop(..., inplace=True)``) and passes the Ref to an op: the op would
  compute on the changed object, and its result be stored for the unchanged one;
- the op changed its argument in place (``xs.append(...)``): the next op given
  that Ref would compute on the changed object, and the argument's bytes,
  written after the call, would not match its content id.

``watch`` checks the caller's side before the op runs and ``Watched.check``
the op's side after it returns; both raise ``ArgumentChangedError`` and make
the changed Refs lazy again, so they reload the stored value. Values that
cannot change in place (numbers, strings, bytes, tuples of them) are skipped;
every other value is hashed again (xxh3: about 0.03 s per GiB of array).
"""

from __future__ import annotations

import datetime
import decimal
import fractions
from typing import Any, Callable, Protocol

from memostore.errors import ArgumentChangedError, MemostoreError
from memostore.hashing import content_id
from memostore.model import CallIdentity, Ref
from memostore.pointers import ValuePointer, pointed_objects, without_ignore

# Types whose instances never change in place; a tuple or frozenset of them neither.
_IMMUTABLE = frozenset((int, float, complex, str, bytes, bool, type(None), range, slice, decimal.Decimal,
                        fractions.Fraction, datetime.date, datetime.datetime, datetime.time, datetime.timedelta))
_NESTING_CHECKED = 4  # how deep tuples are searched for a mutable item before hashing the value instead


class _Committing(Protocol):
    def commit(self) -> None: ...


class _Unwrapping(_Committing, Protocol):
    def unwrap(self, obj: Any) -> Any: ...


class _Binding(Protocol):
    name: str
    ignore: frozenset[str]

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]: ...


def immutable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` provably cannot change in place.

    >>> immutable((1, "a", (2.0, None))), immutable([1]), immutable((1, [2]))
    (True, False, False)
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if (kind is tuple or kind is frozenset) and depth < _NESTING_CHECKED:
        return all(immutable(item, depth + 1) for item in value)
    return False


def _by_content(value: Any) -> bool:
    """Whether a value is identified by its content and could change in place (a ValuePointer goes by its name)."""
    return type(value) is not ValuePointer and not immutable(value)


def _refs_inside(value: Any, refs: list[Ref]) -> bool:
    """Add to ``refs`` the Refs in ``value`` and its lists, tuples and dicts; return whether it holds
    another value the op could change in place. The op gets copies of those containers (see
    ``map_refs``), but the values of the Refs and the other values in them themselves."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return False
    if isinstance(value, Ref):
        refs.append(value)
        return False
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple or isinstance(value, list):
        items = value
    else:
        return kind is not ValuePointer  # a pointer's object is identified by its name
    shared = False
    for item in items:
        if type(item) not in _IMMUTABLE and _refs_inside(item, refs):
            shared = True
    return shared


class Watched:
    """The argument Refs of one call whose values the op could change."""

    __slots__ = ("function", "op_name", "refs", "storage")

    def __init__(self, op_name: str, refs: list[tuple[str, Ref]], storage: _Committing,
                 function: Callable[..., Any] | None = None) -> None:
        self.op_name = op_name
        self.refs = refs
        self.storage = storage
        self.function = function

    def changed(self) -> list[tuple[str, Ref]]:
        """The watched in-memory Refs whose value no longer has their content id."""
        return [(name, ref) for name, ref in self.refs if ref.in_memory and _by_content(ref.value)
                and not _same_content(ref)]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The op's function, then ``check``; if it raised, ``forget_changed`` first."""
        assert self.function is not None
        try:
            result = self.function(*args, **kwargs)
        except BaseException:
            self.forget_changed()
            raise
        self.check()
        return result

    def check(self) -> None:
        """After the op returned: raise ArgumentChangedError if it changed an argument in place."""
        changed = self.changed()
        if changed:
            forget(self.storage, changed)
            raise ArgumentChangedError(
                f"op {self.op_name!r} changed its argument {changed[0][0]!r} in place: its value no longer "
                "matches the content id it was called with, so the call is not stored (its result would be "
                "filed under the unchanged value, and later calls given the argument would compute on the "
                "changed one). Copy the value inside the op before changing it (xs = list(xs), "
                "df = df.copy(), a = a.copy()); the argument's Ref now reloads its stored value")

    def forget_changed(self) -> None:
        """After the op raised: make Refs it changed lazy again (its own error is what the caller sees)."""
        changed = self.changed()
        if changed:
            forget(self.storage, changed)


def _same_content(ref: Ref) -> bool:
    try:
        return content_id(ref.value) == ref.cid
    except MemostoreError:  # no longer hashable at all: changed
        return False


def forget(storage: _Committing, changed: list[tuple[str, Ref]]) -> None:
    """Make changed Refs lazy, so that they reload their stored bytes.

    A value not yet committed is served from the write buffer by the object
    itself; committing first writes its bytes, serialized before the change.
    """
    storage.commit()
    for _, ref in changed:
        ref.detach_inplace()


def refuse_changed(op_name: str, refs: list[tuple[str, Ref]], storage: _Committing) -> None:
    """Raise ArgumentChangedError if the value of one of these argument Refs was changed in
    place since it was computed or loaded (the caller's side, before the op runs)."""
    changed = Watched(op_name, refs, storage).changed()
    if changed:
        forget(storage, changed)
        raise ArgumentChangedError(
            f"op {op_name!r}, argument {changed[0][0]!r}: the value of this Ref was changed in place after it "
            "was computed or unwrapped (it no longer matches its content id), so the op is not run: its result "
            "would be stored for the unchanged value. Don't change a value you unwrapped: change a copy "
            "(df = storage.unwrap(ref).copy()) and pass the copy, a new value; the Ref now reloads its stored value")


def watch(op_: _Binding, storage: _Committing, key: CallIdentity, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Watched | None:
    """Before the op runs: ``refuse_changed`` on the Refs among its arguments; returns what to check
    after it returns (None: nothing), which adds the arguments passed as plain values (hashed just
    now) that hold a value the op could change."""
    watched: list[tuple[str, Ref]] = []
    given = 0  # watched[:given]: the Refs among the arguments
    seen: set[int] = set()
    for name, value in op_.bind(args, kwargs).items():
        if name in op_.ignore or type(value) in _IMMUTABLE:
            continue
        refs: list[Ref] = []
        shared = _refs_inside(value, refs)
        for ref in refs:
            if id(ref) not in seen:
                seen.add(id(ref))
                watched.insert(given, (name, ref))
                given += 1
        plain = key.inputs.get(name)
        if shared and plain is not None and id(plain) not in seen:
            seen.add(id(plain))
            watched.append((name, plain))
    refuse_changed(op_.name, watched[:given], storage)
    return Watched(op_.name, watched, storage) if watched else None


def watched_call(op_: _Binding, storage: _Unwrapping, key: CallIdentity, args: tuple[Any, ...],
                 kwargs: dict[str, Any], function: Callable[..., Any]
                 ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The plain arguments of a call, and ``function`` wrapped to refuse arguments changed in place.

    Checks the caller's side now (``watch``), before loading lazy Refs, and the op's side when the
    returned callable returns.
    """
    watched = watch(op_, storage, key, args, kwargs)
    plain_args, plain_kwargs = pointed_objects(*storage.unwrap(without_ignore(args, kwargs)))
    if watched is None:
        return function, plain_args, plain_kwargs
    watched.function = function
    return watched, plain_args, plain_kwargs
