"""Collections with provenance: lists, tuples, dicts and sets whose items are Refs.

An op annotated ``-> MList[int]`` (``MTuple``, ``MDict``, ``MSet``) returns a
``CollectionRef``: a Ref to the whole collection that also holds a Ref per
item (``primes[0]``, ``len(primes)``, iteration, ``.items()`` of a dict). A
parameter annotated so, or any list, tuple, dict (with str keys) or set
argument that holds Refs, enters the call as one Ref built from its items,
so the items keep their history.

Both are ordinary stored calls of built-in *structural* ops, whose names
start and end with ``__`` (``storage.ops()`` leaves them out):

=================  =====================================  =================
op                 inputs                                 outputs
=================  =====================================  =================
``__list__``       ``elt_0``, ``elt_1``, ...              ``lst``
``__list_items__`` ``lst``                                ``elt_0``, ...
=================  =====================================  =================

and likewise ``__tuple__``/``tpl``, ``__dict__``/``dct`` (items named by
their keys) and ``__set__``/``st`` (items in content-id order). Building
takes items to a collection (an argument), taking apart a collection to its
items (a result), so every ref keeps a single producing call and frames
expand through them unchanged. Each item is stored once as a value of its
own, shared by every collection holding it.

A collection's content id is the id of its plain value (a Ref inside a
container hashes as its content), so a call on ``[inc(0), inc(1)]`` is found
by content from a call on ``[1, 2]``, and the other way round.
"""

from __future__ import annotations

import inspect
import re
import time
import typing
from typing import Any, Callable, Generic, Iterator, Protocol, TypeVar

from memostore.argument_check import refuse_changed
from memostore.errors import OpDefinitionError, RefUsedAsValueError, UnhashableInputError, UnhashableValueError
from memostore.hashing import content_id
from memostore.model import Ref, call_identity, input_ref_hid, output_ref_hid

T = TypeVar("T")
STRUCTURAL_VERSION = "1"
KINDS = ("list", "tuple", "dict", "set")
_COLLECTION_EDGE = {"list": "lst", "tuple": "tpl", "dict": "dct", "set": "st"}
_PLAIN_TYPE: dict[type, str] = {list: "list", tuple: "tuple", dict: "dict", set: "set"}
_ANNOTATION_NAME = re.compile(r"^\s*(?:[A-Za-z_][\w]*\.)*(MList|MTuple|MDict|MSet)\b")
MAX_KEY_CHARS = 200  # a dict key becomes an edge name; names are stored in columns of 255


class MList(Generic[T]):
    """Annotation: the op returns (or the parameter takes) a list stored item by item.

    >>> from memostore import Storage, op
    >>> @op
    ... def doc_primes(n) -> MList[int]:
    ...     return [p for p in range(2, n) if all(p % d for d in range(2, p))]
    >>> storage = Storage()
    >>> with storage:
    ...     primes = doc_primes(10)
    ...     (len(primes), primes[0])
    (4, Ref(2, hid=...))
    """


class MTuple(Generic[T]):
    """Annotation: a tuple stored item by item (one output, unlike a tuple of outputs).

    >>> from memostore import MTuple, Storage, op
    >>> @op
    ... def doc_pair(a) -> MTuple[int]:
    ...     return (a, a + 1)
    >>> storage = Storage()
    >>> with storage:
    ...     pair = doc_pair(1)
    ...     (len(pair), storage.unwrap(pair[1]), storage.unwrap(pair))
    (2, 2, (1, 2))
    """


class MDict(Generic[T]):
    """Annotation: a dict with str keys, stored value by value (``MDict[float]``).

    >>> from memostore import MDict, Storage, op
    >>> @op
    ... def doc_bounds(xs) -> MDict[int]:
    ...     return {"lo": min(xs), "hi": max(xs)}
    >>> storage = Storage()
    >>> with storage:
    ...     bounds = doc_bounds([3, 1, 2])
    ...     (sorted(bounds), storage.unwrap(bounds["hi"]))
    (['hi', 'lo'], 3)
    """


class MSet(Generic[T]):
    """Annotation: a set stored item by item.

    >>> from memostore import MSet, Storage, op
    >>> @op
    ... def doc_evens(n) -> MSet[int]:
    ...     return set(range(0, n, 2))
    >>> storage = Storage()
    >>> with storage:
    ...     evens = doc_evens(5)
    ...     (len(evens), sorted(storage.unwrap(item) for item in evens))
    (3, [0, 2, 4])
    """


_ANNOTATION_KIND: dict[Any, str] = {MList: "list", MTuple: "tuple", MDict: "dict", MSet: "set"}
_KIND_OF_NAME = {"MList": "list", "MTuple": "tuple", "MDict": "dict", "MSet": "set"}


def annotation_kind(annotation: Any, namespace: dict[str, Any]) -> str | None:
    """The collection kind an annotation asks for (``MList[int]`` -> ``"list"``), else None.

    A string annotation (``from __future__ import annotations``) is read by
    name, or else evaluated in the function's globals.

    >>> annotation_kind("MDict[float]", {})
    'dict'
    >>> annotation_kind(list, {}) is None
    True
    """
    if isinstance(annotation, str):
        match = _ANNOTATION_NAME.match(annotation)
        if match:
            return _KIND_OF_NAME[match.group(1)]
        try:
            annotation = eval(annotation, dict(namespace))  # an alias: what typing.get_type_hints does
        except Exception:
            return None
    origin = typing.get_origin(annotation) or annotation
    try:
        return _ANNOTATION_KIND.get(origin)
    except TypeError:  # an unhashable annotation object
        return None


def is_structural(op_name: str) -> bool:
    """Whether an op name is one of memostore's structural ops (``__list__``, ``__dict_items__``, ...).

    >>> is_structural("__list__"), is_structural("__list_items__"), is_structural("my_op")
    (True, True, False)
    """
    return op_name in _STRUCTURAL_NAMES


_STRUCTURAL_NAMES = frozenset(f"__{kind}{suffix}__" for kind in KINDS for suffix in ("", "_items"))


class CollectionRef(Ref):
    """A Ref to a whole list, tuple, dict or set that also holds a Ref per item.

    Index it, take its ``len``, iterate over it (a dict: over its keys, with
    ``keys()``, ``values()``, ``items()`` and ``in``); each item is a Ref with
    its own history. ``storage.unwrap`` gives the plain collection.

    >>> from memostore import CollectionRef, MList, Storage, op
    >>> @op
    ... def doc_squares(n) -> MList[int]:
    ...     return [i * i for i in range(n)]
    >>> storage = Storage()
    >>> with storage:
    ...     squares = doc_squares(3)
    ...     (isinstance(squares, CollectionRef), len(squares), storage.unwrap(squares[2]))
    (True, 3, 4)
    >>> squares
    ListRef([0, 1, 4], hid=..., items=3)
    >>> storage.unwrap(squares)
    [0, 1, 4]
    """

    __slots__ = ("kind", "_items")

    def __init__(self, ref: Ref, kind: str, items: dict[str, Ref]) -> None:
        if ref.in_memory:
            super().__init__(ref.cid, ref.hid, ref.value)
        else:
            super().__init__(ref.cid, ref.hid)
        self.kind = kind
        self._items = items  # edge name -> item, in the collection's order

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items if self.kind == "dict" else self._items.values())

    def __getitem__(self, key: Any) -> Any:
        if self.kind == "dict":
            return self._items[key]
        if self.kind == "set":
            raise RefUsedAsValueError("indexing a set of Refs: a set has no order; iterate over it instead")
        return list(self._items.values())[key]

    def __contains__(self, key: Any) -> bool:
        if self.kind != "dict":
            raise RefUsedAsValueError(f"`in` on a {self.kind} of Refs: a Ref is not its value; "
                                      "compare values, e.g. x in storage.unwrap(ref)")
        return key in self._items

    def keys(self) -> list[str]:
        """A dict's keys (plain strings).

        >>> from memostore import MDict, Storage, op
        >>> @op
        ... def doc_keyed(n) -> MDict[int]:
        ...     return {"n": n, "double": 2 * n}
        >>> with Storage():
        ...     doc_keyed(2).keys()
        ['n', 'double']
        """
        return list(self._dict_items())

    def values(self) -> list[Ref]:
        """A dict's values, as Refs.

        >>> from memostore import MDict, Storage, op
        >>> @op
        ... def doc_valued(n) -> MDict[int]:
        ...     return {"n": n, "double": 2 * n}
        >>> storage = Storage()
        >>> with storage:
        ...     [storage.unwrap(ref) for ref in doc_valued(2).values()]
        [2, 4]
        """
        return list(self._dict_items().values())

    def items(self) -> list[tuple[str, Ref]]:
        """A dict's (key, Ref) pairs.

        >>> from memostore import MDict, Storage, op
        >>> @op
        ... def doc_paired(n) -> MDict[int]:
        ...     return {"n": n, "double": 2 * n}
        >>> storage = Storage()
        >>> with storage:
        ...     [(key, storage.unwrap(ref)) for key, ref in doc_paired(2).items()]
        [('n', 2), ('double', 4)]
        """
        return list(self._dict_items().items())

    def _dict_items(self) -> dict[str, Ref]:
        if self.kind != "dict":
            raise RefUsedAsValueError(f"keys(), values() and items() are for dicts; this is a {self.kind} of Refs")
        return self._items

    def attached(self, value: Any) -> Ref:
        return CollectionRef(Ref(self.cid, self.hid, value), self.kind, self._items)

    def detached(self) -> Ref:
        return CollectionRef(Ref(self.cid, self.hid), self.kind, self._items)

    def __repr__(self) -> str:
        shown = super().__repr__()[len("Ref("):]
        return f"{self.kind.capitalize()}Ref({shown[:-1]}, items={len(self._items)})"

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.kind, self._items, super().__getstate__())

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.kind, self._items = state[0], state[1]
        super().__setstate__(state[2])


class StructuralCalls(Protocol):
    """What building and taking apart collections needs of a storage."""

    call_path: Any

    def unwrap(self, obj: Any) -> Any: ...

    def commit(self) -> None: ...


def pack_argument(storage: StructuralCalls | None, op_name: str, argument: str, value: Any,
                  kind: str | None) -> Any:
    """``value`` as one Ref built from its items when it is a collection to keep
    item by item (``kind`` from the parameter's annotation, or a plain
    collection holding Refs); else ``value`` unchanged.

    The building call is found stored or recorded; with no ``storage``, only
    the Ref's identity is worked out (``storage.explain`` writes nothing).
    """
    packing = _packing(op_name, argument, value, kind)
    if packing is None:
        return value
    kind, items = packing
    edge = _COLLECTION_EDGE[kind]
    key = call_identity(f"__{kind}__", STRUCTURAL_VERSION, items)
    # A Ref inside a container hashes as its content: the id of the plain collection, nothing loaded.
    ref = Ref(content_id(_REBUILD[kind](list(items.items()))), output_ref_hid(key.hid, edge))
    if storage is None:
        return ref
    found = storage.call_path.find(key)
    if found is not None:
        storage.call_path.hit(key, found, count=False)  # records this history if found by content
        return CollectionRef(ref, kind, items)
    refuse_changed(op_name, [(argument, item) for item in items.values()], storage)  # stored as computed
    plain = _REBUILD[kind]([(name, storage.unwrap(item)) for name, item in items.items()])
    call = storage.call_path.record_result(key, [(edge, plain)], False, time.time(), 0.0, count=False)
    return CollectionRef(call.outputs[edge], kind, items)


def _packing(op_name: str, argument: str, value: Any, kind: str | None) -> tuple[str, dict[str, Ref]] | None:
    """The kind and the item Refs (by edge name) of an argument to keep item by item, else None."""
    if isinstance(value, Ref):
        return None
    # A list subclass (storage.map's result) reaches the op as a plain list, so it is one.
    plain_kind = _PLAIN_TYPE.get(type(value)) or ("list" if isinstance(value, list) else None)
    if kind is None:
        if plain_kind is None or not any(isinstance(item, Ref) for item in _members(value)):
            return None
        if plain_kind == "dict" and not all(_usable_key(key) for key in value):
            return None  # keys that cannot name edges: kept whole, as any other value
    elif plain_kind is None or (kind == "dict") != (plain_kind == "dict"):
        raise OpDefinitionError(
            f"op {op_name!r}, argument {argument!r}: annotated as a {kind} stored item by item, got "
            f"{type(value).__name__}; pass a {kind} (or drop the M{kind.capitalize()} annotation)")
    # The value's own type, whatever the annotation: its content id is that of the plain value.
    where = f"argument {argument!r}"
    named = _named_items(op_name, where, plain_kind, value)
    return plain_kind, {name: _as_ref(op_name, where, item) for name, item in named}


def unpack_result(storage: StructuralCalls, op_name: str, kind: str, result: Ref) -> CollectionRef:
    """The collection an op returned, with a Ref per item (stored, or found stored)."""
    key = call_identity(f"__{kind}_items__", STRUCTURAL_VERSION, {_COLLECTION_EDGE[kind]: result})
    found = storage.call_path.find(key)
    if found is not None:
        refs = storage.call_path.hit(key, found, count=False)
        names = [name for name, _, _ in found.outputs]
        items = dict(zip(names, refs, strict=True))
        if kind != "dict":
            items = dict(sorted(items.items(), key=lambda pair: int(pair[0].rpartition("_")[2])))
        return CollectionRef(result, kind, items)
    value = storage.unwrap(result)
    if _PLAIN_TYPE.get(type(value)) != kind:
        raise OpDefinitionError(
            f"op {op_name!r} is annotated to return a {kind} (M{kind.capitalize()}), but returned "
            f"{type(value).__name__}; return a {kind}, or change the annotation")
    named = _named_items(op_name, "its result", kind, value)
    if not named:
        return CollectionRef(result, kind, {})  # nothing to take apart: no call
    call = storage.call_path.record_result(key, named, True, time.time(), 0.0, count=False)
    return CollectionRef(result, kind, dict(call.outputs))


def _members(value: Any) -> Iterator[Any]:
    return iter(value.values()) if isinstance(value, dict) else iter(value)


def _usable_key(key: Any) -> bool:
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY_CHARS and "\x00" not in key and key.isprintable()


def _named_items(op_name: str, where: str, kind: str, value: Any) -> list[tuple[str, Any]]:
    """(edge name, item): positions ``elt_<i>``, a dict's keys, a set's items in content-id order."""
    if kind == "dict":
        bad = [key for key in value if not _usable_key(key)]
        if bad:
            raise OpDefinitionError(
                f"op {op_name!r}, {where}: an MDict needs printable str keys of at most {MAX_KEY_CHARS} "
                f"characters (they name the items), got {bad[0]!r}; convert the keys, or drop the annotation")
        return list(value.items())
    items = list(value)
    if kind == "set":
        items.sort(key=lambda item: _as_ref(op_name, where, item).cid)
    return [(f"elt_{i}", item) for i, item in enumerate(items)]


def _as_ref(op_name: str, where: str, item: Any) -> Ref:
    if isinstance(item, Ref):
        return item
    try:
        cid = content_id(item)
    except UnhashableValueError as err:
        raise UnhashableInputError(f"op {op_name!r}, an item of {where}: {err}") from err
    return Ref(cid, input_ref_hid(cid), item)


_REBUILD: dict[str, Callable[[list[tuple[str, Any]]], Any]] = {
    "list": lambda pairs: [item for _, item in pairs],
    "tuple": lambda pairs: tuple(item for _, item in pairs),
    "dict": dict,
    "set": lambda pairs: {item for _, item in pairs},
}



def pack_arguments(storage: StructuralCalls | None, op_name: str, bound: dict[str, Any], kinds: dict[str, str],
                   ignore: frozenset[str]) -> dict[str, Any]:
    """``bound`` with each collection argument to keep item by item replaced by
    its Ref (see ``pack_argument``); ``bound`` itself when there is none."""
    packed = None
    for name, value in bound.items():
        if name in ignore or (name not in kinds and not isinstance(value, (list, tuple, dict, set))):
            continue
        ref = pack_argument(storage, op_name, name, value, kinds.get(name))
        if ref is not value:
            packed = dict(bound) if packed is None else packed
            packed[name] = ref
    return bound if packed is None else packed


def collection_kinds(op_name: str, func: Any, output_count: int) -> tuple[str | None, dict[str, str]]:
    """The collection kind of an op's result and of its parameters, from their annotations."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None, {}
    namespace = getattr(func, "__globals__", {})
    output = annotation_kind(signature.return_annotation, namespace) \
        if signature.return_annotation is not inspect.Signature.empty else None
    if output is not None and output_count > 1:
        raise OpDefinitionError(
            f"op {op_name!r}: annotated to return one M{output.capitalize()}, but declares {output_count} "
            "outputs; drop nout/output_names, or the annotation")
    params = {name: kind for name, p in signature.parameters.items()
              if p.annotation is not inspect.Parameter.empty
              and (kind := annotation_kind(p.annotation, namespace)) is not None}
    return output, params
