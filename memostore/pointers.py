"""Argument wrappers that change what a call's identity holds: ``ValuePointer`` and ``Ignore``.

``ValuePointer("X", big_array)`` passes ``big_array`` to the op's function,
but the call is identified (and stored) by the name ``"X"`` only: the object
is never hashed nor serialized. What the store keeps is the pointer's name;
a pointer loaded from the store has no object, and asking it for one raises
``PointerNotStoredError``. Give each distinct object its own name: two
objects under one name are one value to memostore.

``Ignore(value)`` passes ``value`` to the op's function and leaves the
argument out of this call's identity, as ``@op(ignore=[...])`` does for
every call.

Both wrap a whole argument of an op call: inside a list or a dict they
would be hashed as values, so there they raise ``UnhashableValueError``.
"""

from __future__ import annotations

from typing import Any

from memostore.errors import PointerNotStoredError, UnhashableInputError, UnhashableValueError
from memostore.hashing import register_digest, tagged_digest
from memostore.serialization import register_serializer

_NOT_HERE: Any = object()
POINTER_FORMAT = "memostore-value-pointer"


class ValuePointer:
    """An object passed to ops under a name: the name is its identity, the object is never stored.

    >>> pointer = ValuePointer("train_set", [1, 2, 3])
    >>> pointer
    ValuePointer('train_set')
    >>> pointer.obj
    [1, 2, 3]

    >>> from memostore import Storage, ValuePointer, op
    >>> @op
    ... def total(data): return sum(data)
    >>> with Storage() as storage:
    ...     result = total(ValuePointer("train_set", [1, 2, 3]))
    >>> storage.unwrap(result), storage.unwrap(storage.get_ref_creator(result).inputs["data"])
    (6, ValuePointer('train_set'))
    """

    __slots__ = ("id", "_obj")

    def __init__(self, id: str, obj: Any) -> None:
        if not isinstance(id, str) or not id:
            raise UnhashableInputError(f"ValuePointer's name must be a non-empty string, got {id!r}")
        if isinstance(obj, (ValuePointer, Ignore)):
            raise UnhashableInputError(f"ValuePointer({id!r}, ...) wraps a {type(obj).__name__}; each wraps a whole "
                                       "argument: pass ValuePointer(name, obj) or Ignore(value), not one in the other")
        self.id = id
        self._obj = obj

    @classmethod
    def stored(cls, id: str) -> ValuePointer:
        """The pointer as the store keeps it: its name, without the object.

        >>> from memostore import ValuePointer
        >>> ValuePointer.stored("train_set").has_obj
        False
        """
        pointer = cls(id, None)
        pointer._obj = _NOT_HERE
        return pointer

    @property
    def has_obj(self) -> bool:
        """Whether this pointer holds its object (False for one loaded from the store).

        >>> from memostore import ValuePointer
        >>> ValuePointer("train_set", [1, 2, 3]).has_obj, ValuePointer.stored("train_set").has_obj
        (True, False)
        """
        return self._obj is not _NOT_HERE

    @property
    def obj(self) -> Any:
        """The object; a pointer loaded from the store has none (PointerNotStoredError).

        >>> from memostore import ValuePointer
        >>> ValuePointer("train_set", [1, 2, 3]).obj
        [1, 2, 3]
        >>> ValuePointer.stored("train_set").obj
        Traceback (most recent call last):
        memostore.errors.PointerNotStoredError: ValuePointer('train_set') was loaded from the store, ...
        """
        if self._obj is _NOT_HERE:
            raise PointerNotStoredError(
                f"ValuePointer({self.id!r}) was loaded from the store, which keeps only the pointer's name, "
                f"never its object; pass ValuePointer({self.id!r}, obj) to an op to use the object again")
        return self._obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValuePointer) and other.id == self.id

    def __hash__(self) -> int:
        return hash((ValuePointer, self.id))

    def __repr__(self) -> str:
        return f"ValuePointer({self.id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to a worker process, a pointer keeps its object; the store keeps only the name (see below).
        return (ValuePointer, (self.id, self._obj)) if self.has_obj else (ValuePointer.stored, (self.id,))


class Ignore:
    """An argument left out of this call's identity; the function still receives ``value``.

    >>> Ignore(8)
    Ignore(8)

    >>> from memostore import Ignore, Storage, op
    >>> @op
    ... def double(x, verbose): return 2 * x
    >>> with Storage() as storage:
    ...     _ = double(1, Ignore(True))
    ...     again = double(1, Ignore(False))  # the same call: a hit
    >>> len(storage.calls_of(double)), list(storage.get_ref_creator(again).inputs)
    (1, ['x'])
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Ignore({self.value!r})"


def pointer_digest(pointer: ValuePointer) -> bytes:
    """The content digest of a pointer: its name, tagged, never the object."""
    return tagged_digest(b"memostore.ValuePointer", pointer.id.encode())


def _nested(kind: str) -> Any:
    def refuse(value: Any) -> bytes:
        raise UnhashableValueError(
            f"{value!r} inside a list, tuple, dict or result: {kind} wraps a whole argument of an op call; "
            "pass it as the argument itself")
    return refuse


register_digest(ValuePointer, _nested("ValuePointer"))
register_digest(Ignore, _nested("Ignore"))
register_serializer(ValuePointer, POINTER_FORMAT, lambda pointer: pointer.id.encode(),
                    lambda data: ValuePointer.stored(data.decode()))


def without_ignore(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments with each ``Ignore(v)`` replaced by ``v`` (before Refs are unwrapped)."""
    return (tuple(a.value if type(a) is Ignore else a for a in args),
            {k: v.value if type(v) is Ignore else v for k, v in kwargs.items()})


def pointed_objects(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments with each ``ValuePointer`` replaced by its object (after Refs are unwrapped:
    a Ref of a stored pointer gives the pointer, whose object is not stored)."""
    return (tuple(a.obj if type(a) is ValuePointer else a for a in args),
            {k: v.obj if type(v) is ValuePointer else v for k, v in kwargs.items()})


def has_wrapper(values: Any) -> bool:
    """Whether any of these top-level argument values is a ``ValuePointer`` or ``Ignore``."""
    return any(type(v) is ValuePointer or type(v) is Ignore for v in values)
