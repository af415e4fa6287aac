"""Content ids: a canonical, type-tagged encoding hashed with xxh3-128.

Every value is reduced to a 16-byte digest of ``(type tag, payload)``:

==================  ===========================================================
value               payload
==================  ===========================================================
None, bool, int     the value's bytes (ints in two's complement, any size)
float, complex      IEEE-754 bytes (every NaN encodes alike)
str, bytes          UTF-8 / raw bytes
list, tuple         the digests of the items, in order
dict                the (key digest, value digest) pairs, sorted
set, frozenset      the item digests, sorted
numpy array         dtype, shape and the raw bytes of its C-contiguous copy;
                    object arrays: the digests of their items
numpy scalar        dtype and raw bytes
pandas objects      index, column names, dtypes and values
dataclass           class name and the digests of its fields
registered types    class name and the digest of ``register_hasher``'s key
anything else       cloudpickle bytes, tagged as such
==================  ===========================================================

Containers hash the digests of their items, so a content id never depends on
dict or set order, and an item whose digest is already known (a stored
``Ref``) is never loaded to hash the container holding it.
Changing any encoding changes stored ids: bump ``HASH_FORMAT`` when you do.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import struct
import types
from typing import Any, Callable

import cloudpickle
import xxhash

from memostore.errors import UnhashableValueError

HASH_FORMAT = 1
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
    handler = _BUILTIN_HANDLERS.get(type(value))
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


def _float_bytes(value: float) -> bytes:
    return b"nan" if value != value else struct.pack("<d", value)


def _digest_float(value: float) -> bytes:
    return tagged_digest(b"float", _float_bytes(value))


def _digest_complex(value: complex) -> bytes:
    return tagged_digest(b"complex", _float_bytes(value.real) + _float_bytes(value.imag))


def _digest_str(value: str) -> bytes:
    return tagged_digest(b"str", value.encode("utf-8", "surrogatepass"))


def _digest_bytes(value: bytes | bytearray) -> bytes:
    return tagged_digest(b"bytes", bytes(value))


def _digest_list(value: list[Any]) -> bytes:
    return tagged_digest(b"list", b"".join(map(digest, value)))


def _digest_tuple(value: tuple[Any, ...]) -> bytes:
    return tagged_digest(b"tuple", b"".join(map(digest, value)))


def _digest_dict(value: dict[Any, Any]) -> bytes:
    pairs = sorted(digest(k) + digest(v) for k, v in value.items())
    return tagged_digest(b"dict", b"".join(pairs))


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
    bytearray: _digest_bytes,
    list: _digest_list,
    tuple: _digest_tuple,
    dict: _digest_dict,
    set: _digest_set,
    frozenset: _digest_frozenset,
}


# --- everything else: one singledispatch registry ----------------------------

@functools.singledispatch
def _dispatch(value: Any) -> bytes:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _digest_dataclass(value)
    return _digest_pickled(value)


for _builtin_type, _handler in _BUILTIN_HANDLERS.items():
    _dispatch.register(_builtin_type)(_handler)
_BUILTIN_HANDLER_SET = frozenset(_BUILTIN_HANDLERS.values())

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
        # A subclass of a builtin (an IntEnum, a numpy str_): keep its type.
        return tagged_digest(b"subclass:" + _type_name(cls).encode(), handler(value))
    return handler(value)


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
    io.IOBase,
)


def _digest_pickled(value: Any) -> bytes:
    if isinstance(value, _NOT_CONTENT_TYPES):
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: it is a stream "
            "or a running computation, not content; pass its contents instead "
            "(e.g. list(generator), or the file's path or bytes)"
        )
    try:
        payload = cloudpickle.dumps(value, protocol=5)
    except Exception as err:
        raise UnhashableValueError(
            f"cannot hash a value of type {_type_name(type(value))}: "
            f"cloudpickle failed ({type(err).__name__}: {err}); register a hasher "
            "with memostore.register_hasher(type, key) or pass plain data"
        ) from err
    return tagged_digest(b"pickle", payload)


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --- numpy and pandas, registered on first sight of one of their objects -----

def _register_numpy() -> None:
    import numpy as np

    def digest_array(value: Any) -> bytes:
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

    def digest_index(value: Any) -> bytes:
        tag = f"pd.{type(value).__name__}:{value.dtype!r}".encode()
        return tagged_digest(tag, digest(list(value.names)) + values_digest(value))

    def digest_series(value: Any) -> bytes:
        tag = f"pd.Series:{value.dtype!r}".encode()
        return tagged_digest(tag, digest(value.name) + digest_index(value.index) + values_digest(value))

    def digest_frame(value: Any) -> bytes:
        parts = [digest_index(value.columns), digest_index(value.index)]
        for position in range(value.shape[1]):
            column = value.iloc[:, position]
            parts.append(repr(column.dtype).encode() + b"\x00" + values_digest(column))
        return tagged_digest(b"pd.DataFrame", b"".join(parts))

    register_digest(pd.Index, digest_index)
    register_digest(pd.Series, digest_series)
    register_digest(pd.DataFrame, digest_frame)
