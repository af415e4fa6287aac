"""Content ids: a canonical, type-tagged encoding hashed with xxh3-128.

Every value is reduced to a 16-byte digest of ``(type tag, payload)``:

==================  ===========================================================
value               payload
==================  ===========================================================
None, bool, int     the value's bytes (ints in two's complement, any size)
float, complex      IEEE-754 bytes (every NaN encodes alike)
str, bytes          UTF-8 / raw bytes
bytearray           raw bytes, under its own tag
memoryview          item format, shape and raw bytes
list, tuple         the digests of the items, in order
dict                the (key digest, value digest) pairs, sorted
OrderedDict         the (key digest, value digest) pairs, in order
defaultdict         the factory's digest, then the pairs as for dict
set, frozenset      the item digests, sorted
other subclasses    the class name, the base type's payload, and the
of builtins         digest of the instance's ``__dict__`` when it has one
numpy array         dtype, shape and the raw bytes of its C-contiguous copy;
                    object arrays: the digests of their items
ndarray subclass    the class name and the array's digest; a masked array
                    adds its mask, fill value and hardness, other
                    subclasses their ``__dict__`` (refused if unhashable)
numpy scalar        dtype and raw bytes
pandas objects      index, column names, dtypes and values; categoricals
                    their full categories and ordering; an index its
                    ``freq`` when it has one
dataclass           class name and the digests of its fields
registered types    class name and the digest of ``register_hasher``'s key
anything else       cloudpickle bytes, tagged as such; sets and frozensets
                    inside are pickled as their digest, so their order
                    (which depends on ``PYTHONHASHSEED``) never counts;
                    a function of your own importable code (not installed,
                    not ``__main__``), or such a class as the value
                    itself, as its name and the digest of its canonical
                    source, so editing it counts
==================  ===========================================================

Containers hash the digests of their items, so a content id never depends on
dict or set order, and an item whose digest is already known (a stored
``Ref``) is never loaded to hash the container holding it.
Changing any encoding changes stored ids: bump ``HASH_FORMAT`` when you do.

Format 2 changed only values that format 1 merged with others or hashed
differently in every process: bytearrays (format 1 hashed them as bytes),
memoryviews (refused before), OrderedDicts and defaultdicts (hashed as plain
dicts), ndarray subclasses (hashed by their data alone), categorical dtypes
(a truncated repr), indexes with a ``freq``, subclasses of builtins with
attributes of their own, and pickled objects holding sets or frozensets.
Every other id is as in format 1 (``tests/test_hashing_golden.py``).

Format 3 changed only values holding a function of your own importable code
(a module outside site-packages and the standard library, reached by name),
and such classes given as values: format 2 pickled them by name alone, so an
op given one kept its stored result after the code was edited.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import io
import os
import struct
import types
from typing import Any, Callable

import cloudpickle
import xxhash

from memostore.code_names import own_code
from memostore.errors import MemostoreError, UnhashableValueError

HASH_FORMAT = 3
DIGEST_SIZE_BYTES = 16

_one_shot = xxhash.xxh3_128_digest


def tagged_digest(tag: bytes, payload: bytes) -> bytes:
    """The 16-byte xxh3-128 digest of a tag and its payload.

    >>> len(tagged_digest(b"str", b"abc"))
    16
    """
    return _one_shot(tag + b"\x00" + payload)


def content_id(value: Any) -> str:
    """The content id of a value: 32 hex digits, equal for equal contents.

    Raises UnhashableValueError for values with no stable content
    (generators, open files, locks).

    >>> content_id({"a": 1, "b": 2}) == content_id({"b": 2, "a": 1})
    True
    >>> content_id(1) == content_id(1.0)
    False
    """
    try:
        return digest(value).hex()
    except RecursionError:
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: "
            "it contains itself (or is nested too deeply)"
        ) from None


def digest(value: Any) -> bytes:
    """The 16-byte digest behind ``content_id``."""
    handler = _BUILTIN_HANDLERS.get(type(value)) or _EXACT_HANDLERS.get(type(value))
    if handler is not None:
        return handler(value)
    return _digest_other(value)


def register_hasher(cls: type, key: Callable[[Any], Any]) -> None:
    """Hash instances of ``cls`` (and its subclasses) by ``key(obj)``.

    ``key`` returns any value memostore can hash itself (a tuple of the
    fields that make up the content, say); the class name is folded in, so two
    classes with equal keys still get distinct ids.

    >>> class Point:
    ...     def __init__(self, x, y):
    ...         self.x, self.y = x, y
    >>> register_hasher(Point, lambda p: (p.x, p.y))
    >>> content_id(Point(1, 2)) == content_id(Point(1, 2))
    True
    """
    tag = b"user:" + _type_name(cls).encode()

    def by_key(value: Any) -> bytes:
        return tagged_digest(tag, digest(key(value)))

    register_digest(cls, by_key)


def register_digest(cls: type, to_digest: Callable[[Any], bytes]) -> None:
    """Low-level registration: ``to_digest(obj)`` returns the 16-byte digest."""
    _dispatch.register(cls)(to_digest)
    _LAZY_CHECKED.clear()


# --- builtins --------------------------------------------------------------

def _digest_none(value: None) -> bytes:
    return tagged_digest(b"none", b"")


def _digest_bool(value: bool) -> bytes:
    return tagged_digest(b"bool", b"\x01" if value else b"\x00")


def _digest_int(value: int) -> bytes:
    length = (value.bit_length() + 8) // 8
    return tagged_digest(b"int", int(value).to_bytes(length, "little", signed=True))


def int_digests(numbers: Any) -> Any:
    """``digest`` of each int of a numpy array of 32-bit ints, as a ``(n, 16)`` uint8 array.

    An int's digest hashes the tag ``int``, a zero byte, and the int's shortest
    little-endian two's complement bytes. Those inputs are cut here from one
    array, grouped by length, so the only work left per int is the hash itself
    (a frame checks hundreds of thousands of stored ints this way).

    >>> import numpy as np
    >>> [bytes(row) for row in int_digests(np.array([5, -128], dtype=np.int32))] == [digest(5), digest(-128)]
    True
    """
    import numpy as np

    tag = np.frombuffer(b"int\x00", dtype=np.uint8)
    wide = numbers.astype("<i8")
    records = np.empty((wide.size, tag.size + 8), dtype=np.uint8)
    records[:, :tag.size] = tag
    records[:, tag.size:] = wide.view(np.uint8).reshape(-1, 8)
    magnitude = np.where(wide < 0, -wide, wide).astype(np.float64)  # exact below 2**53
    payload = (np.frexp(magnitude)[1] + 8) // 8  # (bit_length + 8) // 8, as _digest_int
    digests = np.empty((wide.size, 16), dtype=np.uint8)
    for length in np.unique(payload).tolist():
        rows = np.flatnonzero(payload == length)
        width = tag.size + length
        inputs = np.ascontiguousarray(records[rows, :width]).view(f"V{width}").ravel().tolist()  # bytes each
        found = b"".join(map(_one_shot, inputs))
        digests[rows] = np.frombuffer(found, dtype=np.uint8).reshape(-1, 16)
    return digests


def _float_bytes(value: float) -> bytes:
    return b"nan" if value != value else struct.pack("<d", value)


def _digest_float(value: float) -> bytes:
    return tagged_digest(b"float", _float_bytes(value))


def _digest_complex(value: complex) -> bytes:
    return tagged_digest(b"complex", _float_bytes(value.real) + _float_bytes(value.imag))


def _digest_str(value: str) -> bytes:
    return tagged_digest(b"str", value.encode("utf-8", "surrogatepass"))


def _digest_bytes(value: bytes) -> bytes:
    return tagged_digest(b"bytes", value)


def _digest_bytearray(value: bytearray) -> bytes:
    return tagged_digest(b"bytearray", bytes(value))


def _digest_memoryview(value: memoryview) -> bytes:
    header = f"{value.format}:{value.shape}\x00".encode()
    return tagged_digest(b"memoryview", header + value.tobytes())


def _digest_list(value: list[Any]) -> bytes:
    return tagged_digest(b"list", b"".join(map(digest, value)))


def _digest_tuple(value: tuple[Any, ...]) -> bytes:
    return tagged_digest(b"tuple", b"".join(map(digest, value)))


def _digest_dict(value: dict[Any, Any]) -> bytes:
    pairs = sorted(digest(k) + digest(v) for k, v in value.items())
    return tagged_digest(b"dict", b"".join(pairs))


def _digest_ordered_dict(value: collections.OrderedDict[Any, Any]) -> bytes:
    return tagged_digest(b"OrderedDict", b"".join(digest(k) + digest(v) for k, v in value.items()))


def _digest_defaultdict(value: collections.defaultdict[Any, Any]) -> bytes:
    return tagged_digest(b"defaultdict", digest(value.default_factory) + _digest_dict(value))


def _digest_set(value: set[Any]) -> bytes:
    return tagged_digest(b"set", b"".join(sorted(map(digest, value))))


def _digest_frozenset(value: frozenset[Any]) -> bytes:
    return tagged_digest(b"frozenset", b"".join(sorted(map(digest, value))))


_BUILTIN_HANDLERS: dict[type, Callable[[Any], bytes]] = {
    type(None): _digest_none,
    bool: _digest_bool,
    int: _digest_int,
    float: _digest_float,
    complex: _digest_complex,
    str: _digest_str,
    bytes: _digest_bytes,
    bytearray: _digest_bytearray,
    memoryview: _digest_memoryview,
    list: _digest_list,
    tuple: _digest_tuple,
    dict: _digest_dict,
    set: _digest_set,
    frozenset: _digest_frozenset,
}
# Exact types with handlers of their own (their subclasses get the generic subclass tag).
_EXACT_HANDLERS: dict[type, Callable[[Any], bytes]] = {
    collections.OrderedDict: _digest_ordered_dict,
    collections.defaultdict: _digest_defaultdict,
}


# --- everything else: one singledispatch registry ----------------------------

@functools.singledispatch
def _dispatch(value: Any) -> bytes:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _digest_dataclass(value)
    return _digest_pickled(value)


for _builtin_type, _handler in (*_BUILTIN_HANDLERS.items(), *_EXACT_HANDLERS.items()):
    _dispatch.register(_builtin_type)(_handler)
_BUILTIN_HANDLER_SET = frozenset((*_BUILTIN_HANDLERS.values(), *_EXACT_HANDLERS.values()))

# Types whose module has been checked for lazily registered handlers.
_LAZY_CHECKED: set[type] = set()
_LAZY_MODULES = ("numpy", "pandas")
_lazy_registered: set[str] = set()


def _digest_other(value: Any) -> bytes:
    cls = type(value)
    if cls not in _LAZY_CHECKED:
        root = cls.__module__.partition(".")[0]
        if root in _LAZY_MODULES and root not in _lazy_registered:
            _register_lazy(root)
        _LAZY_CHECKED.add(cls)
    handler = _dispatch.dispatch(cls)
    if handler in _BUILTIN_HANDLER_SET:
        # A subclass of a builtin (an IntEnum, a numpy str_): keep its type, and its own attributes.
        payload = handler(value)
        attributes = getattr(value, "__dict__", None)
        if attributes and not isinstance(value, enum.Enum):
            payload += digest(attributes)
        return tagged_digest(b"subclass:" + _type_name(cls).encode(), payload)
    return handler(value)


def has_content_hasher(cls: type) -> bool:
    """Whether values of ``cls`` are hashed by a handler of their own (builtins, numpy, pandas,
    ``register_hasher``), not by pickling them.

    >>> has_content_hasher(list), has_content_hasher(type(len))
    (True, False)
    """
    root = cls.__module__.partition(".")[0]
    if root in _LAZY_MODULES and root not in _lazy_registered:
        _register_lazy(root)
    return _dispatch.dispatch(cls) is not _dispatch.registry[object]


def _register_lazy(module_root: str) -> None:
    _lazy_registered.add(module_root)
    if module_root == "numpy":
        _register_numpy()
    elif module_root == "pandas":
        _register_numpy()
        _register_pandas()


def _digest_dataclass(value: Any) -> bytes:
    fields = tuple((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    return tagged_digest(b"dataclass:" + _type_name(type(value)).encode(), digest(fields))


_NOT_CONTENT_TYPES = (
    types.GeneratorType,
    types.AsyncGeneratorType,
    types.CoroutineType,
)


def _digest_pickled(value: Any) -> bytes:
    if isinstance(value, io.IOBase):
        name = getattr(value, "name", None)
        example = f"File({name!r})" if isinstance(name, (str, os.PathLike)) else "File(path)"
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: an open file is a stream, not content; "
            f"use memostore.{example} instead, which the file's content and name identify (an edited file "
            "recomputes), or pass the bytes it holds")
    if isinstance(value, _NOT_CONTENT_TYPES):
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: it is a stream "
            "or a running computation, not content; pass its contents instead "
            "(e.g. list(generator))"
        )
    try:
        buffer = io.BytesIO()
        _HashingPickler(buffer, value).dump(value)
        payload = buffer.getvalue()
    except MemostoreError:  # a refusal of its own (a function whose file changed since its import)
        raise
    except Exception as err:
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: "
            f"cloudpickle failed ({type(err).__name__}: {err}); register a hasher "
            "with memostore.register_hasher(type, key) or pass plain data"
        ) from err
    return tagged_digest(b"pickle", payload)


class _HashingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, with sets and frozensets written as their (order-free) digest, and functions of
    your own code, and a class of your own given as the value itself, as their name and code.

    A set's iteration order depends on ``PYTHONHASHSEED``, so its pickle
    differs between processes; the bytes are only hashed, never loaded.
    The class of an instance is still written by name: editing a class does
    not change the ids of its instances (nor an Enum's members).
    """

    def __init__(self, file: io.BytesIO, value: Any) -> None:
        super().__init__(file, protocol=5)
        self._value = value

    def persistent_id(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is set or cls is frozenset:
            return (cls.__name__, digest(obj))
        if cls is types.FunctionType or (obj is self._value and isinstance(obj, type)):
            named = own_code(obj)
            return None if named is None else ("code", named[0], tagged_digest(b"code", named[1].encode()))
        return None


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- numpy and pandas, registered on first sight of one of their objects -----

def _register_numpy() -> None:
    import numpy as np

    def digest_plain_array(value: Any) -> bytes:
        if value.dtype.hasobject:
            header = f"object:{value.shape}".encode()
            return tagged_digest(b"ndarray", header + b"".join(map(digest, value.ravel(order="C"))))
        dtype = value.dtype
        dtype_text = str(dtype.descr) if dtype.fields else dtype.str
        header = f"ndarray\x00{dtype_text}:{value.shape}\x00".encode()
        contiguous = np.ascontiguousarray(value)
        hasher = xxhash.xxh3_128(header)
        hasher.update(contiguous.reshape(-1).view(np.uint8).data)
        return hasher.digest()

    def digest_array(value: Any) -> bytes:
        cls = type(value)
        if cls is np.ndarray:
            return digest_plain_array(value)
        data = digest_plain_array(value.view(np.ndarray))
        state: Any
        if isinstance(value, np.ma.MaskedArray):
            state = (np.ma.getmaskarray(value), value.fill_value, value.hardmask)
        elif cls is np.memmap:
            state = ()  # where the data lives is not content
        else:
            state = vars(value)  # refused below if it holds something unhashable
        return tagged_digest(b"ndarray-subclass:" + _type_name(cls).encode(), data + digest(state))

    def digest_scalar(value: Any) -> bytes:
        array = np.asarray(value)
        if array.dtype.hasobject:
            return _digest_pickled(value)
        return tagged_digest(b"npscalar:" + array.dtype.str.encode(), array.tobytes())

    register_digest(np.ndarray, digest_array)
    register_digest(np.generic, digest_scalar)


def _register_pandas() -> None:
    import pandas as pd

    def values_digest(values: Any) -> bytes:
        return digest(values.to_numpy() if hasattr(values, "to_numpy") else values)

    def dtype_text(dtype: Any) -> str:
        # A categorical dtype's repr elides categories: its categories are hashed in full instead.
        return "category" if isinstance(dtype, pd.CategoricalDtype) else repr(dtype)

    def dtype_extra(dtype: Any) -> bytes:
        if isinstance(dtype, pd.CategoricalDtype):
            return digest_index(dtype.categories) + digest(bool(dtype.ordered))
        return b""

    def digest_index(value: Any) -> bytes:
        tag = f"pd.{type(value).__name__}:{dtype_text(value.dtype)}".encode()
        payload = digest(list(value.names)) + values_digest(value) + dtype_extra(value.dtype)
        freq = getattr(value, "freq", None)
        if freq is not None and not isinstance(value, pd.PeriodIndex):  # a period's freq is in its dtype
            payload += digest(("freq", freq.freqstr))
        return tagged_digest(tag, payload)

    def digest_series(value: Any) -> bytes:
        tag = f"pd.Series:{dtype_text(value.dtype)}".encode()
        return tagged_digest(tag, digest(value.name) + digest_index(value.index) + values_digest(value)
                             + dtype_extra(value.dtype))

    def digest_frame(value: Any) -> bytes:
        parts = [digest_index(value.columns), digest_index(value.index)]
        for position in range(value.shape[1]):
            column = value.iloc[:, position]
            parts.append(dtype_text(column.dtype).encode() + b"\x00" + values_digest(column)
                         + dtype_extra(column.dtype))
        return tagged_digest(b"pd.DataFrame", b"".join(parts))

    register_digest(pd.Index, digest_index)
    register_digest(pd.Series, digest_series)
    register_digest(pd.DataFrame, digest_frame)
