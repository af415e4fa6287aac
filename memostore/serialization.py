"""Values to ``(format, bytes)`` and back.

Formats, tried in this order:

==============  ==============================================  ============
format          for                                             runs code?
==============  ==============================================  ============
``user:NAME``   types given to ``register_serializer``          yours
``marshal``     None, bool, int, float, complex, str, bytes     no
                and lists, tuples, dicts, sets of them
``npy``         numpy arrays and scalars (not dtype=object)     no
``pandas``      DataFrames and Series whose columns are numpy   no
                dtypes or strings, with a simple index
``pickle``      anything else, through cloudpickle              yes
                (ndarray subclasses such as masked arrays,
                np.matrix and recarrays too: npy would drop
                their type and extra state)
==============  ==============================================  ============

Only ``pickle`` can run code while loading; ``loads(..., allow_pickle=False)``
refuses it, which is how a storage that does not trust its store stays safe.
Plain values are read by ``marshal_format.decode``, never ``marshal.loads``;
npy headers are checked against the bytes present before an array is
allocated. Bytes that do not decode raise ``CorruptValueError``, whatever
went wrong inside. Pickles and ``user:`` formats end with an xxh3-128
checksum of their bytes (``with_checksum``), since they need not round-trip
to the same content id; the other formats round-trip exactly, so a load is
checked by recomputing the content id (see ``buffer.CallBuffer.load_row``).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO, Callable, NamedTuple

import cloudpickle
import xxhash

from memostore import marshal_format
from memostore.errors import CorruptValueError, MemostoreError, SerializationError, UntrustedValueError
from memostore.npy_format import read_npy

FORMAT_MARSHAL = "marshal"
FORMAT_NUMPY = "npy"
FORMAT_PANDAS = "pandas"
FORMAT_PICKLE = "pickle"
USER_PREFIX = "user:"
UNPICKLE_FIX = ("open the storage with allow_pickle=True if you trust whoever wrote it, or leave the value unloaded, "
                "as a Ref (in a frame: df(values='refs') or df(lazy_vars=[...]))")
_CHECKSUM_MARKER = b"\x00memostore-xxh3-128:"

_MARSHAL_LEAVES = frozenset({type(None), bool, int, float, complex, str, bytes})
_MARSHAL_CONTAINERS = frozenset({list, tuple, set, frozenset})
_MAX_MARSHAL_DEPTH = 64


class _UserSerializer(NamedTuple):
    cls: type
    name: str
    dump: Callable[[Any], bytes]
    load: Callable[[bytes], Any]


_user_by_type: dict[type, _UserSerializer] = {}
_user_by_name: dict[str, _UserSerializer] = {}


def register_serializer(
    cls: type, name: str, dump: Callable[[Any], bytes], load: Callable[[bytes], Any]
) -> None:
    """Store instances of ``cls`` as ``dump(obj)`` bytes, read back with ``load``.

    ``name`` is written beside each value, so keep it stable across releases
    of your code; a process that reads the value must register it too.

    >>> import json
    >>> class Config(dict):
    ...     pass
    >>> register_serializer(Config, "config-json",
    ...     lambda c: json.dumps(c).encode(), lambda b: Config(json.loads(b)))
    >>> loads(*dumps(Config(a=1)))
    {'a': 1}
    """
    entry = _UserSerializer(cls, name, dump, load)
    _user_by_type[cls] = entry
    _user_by_name[name] = entry


class Parts:
    """Serialized bytes kept as separate buffers (a header, then an array's own memory).

    A 1 GB array is written to its blob straight from its memory instead of
    being copied into one bytes object first; ``len`` is the total size.
    """

    __slots__ = ("buffers", "nbytes")

    def __init__(self, buffers: list[bytes | memoryview]) -> None:
        self.buffers = buffers
        self.nbytes = sum(memoryview(b).nbytes for b in buffers)

    def __len__(self) -> int:
        return self.nbytes

    def tobytes(self) -> bytes:
        """The parts joined (for values small enough to store inline)."""
        return b"".join(self.buffers)


def dumps(value: Any) -> tuple[str, bytes | Parts]:
    """Serialize a value; returns its format name and bytes (or ``Parts`` for arrays).

    Raises SerializationError when no format can hold the value.

    >>> dumps([1, "a"])[0]
    'marshal'
    """
    user = _user_by_type.get(type(value))
    if user is not None:
        return USER_PREFIX + user.name, with_checksum(user.dump(value))
    if _is_marshal_tree(value, 0):
        return FORMAT_MARSHAL, marshal_format.dumps(value)
    if _is_numpy(value) and not value.dtype.hasobject:
        return FORMAT_NUMPY, _dump_numpy(value)
    if type(value).__module__.startswith("pandas"):
        from memostore import pandas_format

        data = pandas_format.dump(value)
        if data is not None:
            return FORMAT_PANDAS, data
    try:
        return FORMAT_PICKLE, with_checksum(cloudpickle.dumps(value, protocol=5))
    except Exception as err:
        raise SerializationError(
            f"cannot serialize a value of type {type(value).__module__}."
            f"{type(value).__qualname__}: cloudpickle failed ({type(err).__name__}: {err}); "
            "register one with memostore.register_serializer(type, name, dump, load)"
        ) from err


def loads(format_name: str, data: bytes | Parts, allow_pickle: bool = True) -> Any:
    """Rebuild a value from ``dumps``' output.

    Raises UntrustedValueError for a pickle when ``allow_pickle`` is False,
    SerializationError for a format this process does not know, and
    CorruptValueError for bytes that do not decode.

    >>> loads(*dumps({"x": (1, 2.5)}))
    {'x': (1, 2.5)}
    """
    return loads_checked(format_name, data, allow_pickle)[0]


def loads_checked(format_name: str, data: bytes | Parts, allow_pickle: bool = True) -> tuple[Any, bool]:
    """``loads``, and whether a checksum written with the bytes vouched for them.

    Pickles and registered formats carry one (a pickle's bytes need not
    survive a round trip, so its content id cannot be recomputed to check
    it); other formats round-trip exactly and are checked by content id.
    """
    if isinstance(data, Parts):
        data = data.tobytes()
    if format_name == FORMAT_PICKLE and not allow_pickle:
        raise UntrustedValueError(f"this value is stored as a pickle, and loading one can run code; {UNPICKLE_FIX}")
    vouched = False
    if format_name == FORMAT_PICKLE or format_name.startswith(USER_PREFIX):
        data, vouched = split_checksum(data)
    try:
        return _decode(format_name, data), vouched
    except MemostoreError:
        raise
    except Exception as err:  # whatever the damage, the caller sees one error
        raise CorruptValueError(f"damaged {format_name} value: {type(err).__name__}: {err}") from None


def with_checksum(payload: bytes) -> bytes:
    """``payload``, then a marker and its xxh3-128 (unpickling ignores bytes after a pickle)."""
    return payload + _CHECKSUM_MARKER + xxhash.xxh3_128_digest(payload)


def split_checksum(data: bytes) -> tuple[bytes, bool]:
    """The payload and True if ``data`` ends with a checksum that matches it; ``(data, False)`` if it has none.

    Raises CorruptValueError when the checksum is there but does not match.
    """
    trailer = len(_CHECKSUM_MARKER) + 16
    found = data[-trailer:-16] if len(data) >= trailer else b""
    if found != _CHECKSUM_MARKER:
        same = sum(a == b for a, b in zip(found, _CHECKSUM_MARKER, strict=False))
        if same > len(_CHECKSUM_MARKER) // 2:  # nearly the marker: a damaged one, not an earlier release's bytes
            raise CorruptValueError("damaged value: the marker of its checksum is damaged")
        return data, False  # written by an earlier release
    payload = data[:-trailer]
    if xxhash.xxh3_128_digest(payload) != data[-16:]:
        raise CorruptValueError("damaged value: its bytes do not match the checksum written with them")
    return payload, True


def _decode(format_name: str, data: bytes) -> Any:
    if format_name == FORMAT_MARSHAL:
        return marshal_format.decode(data)
    if format_name == FORMAT_NUMPY:
        return _load_numpy(io.BytesIO(data), len(data))
    if format_name == FORMAT_PANDAS:
        from memostore import pandas_format

        return pandas_format.load(data)
    if format_name == FORMAT_PICKLE:
        stream = io.BytesIO(data)
        value = pickle.Unpickler(stream).load()
        if stream.tell() != len(data):  # bytes after the pickle: a checksum whose marker was damaged
            raise CorruptValueError(f"damaged pickle value: {len(data) - stream.tell()} bytes after its end")
        return value
    if format_name.startswith(USER_PREFIX):
        user = _user_by_name.get(format_name[len(USER_PREFIX):])
        if user is not None:
            return user.load(data)
    raise SerializationError(
        f"unknown value format {format_name!r}: it was written with a serializer this "
        "process has not registered; call memostore.register_serializer(...) first"
    )


def _is_marshal_tree(value: Any, depth: int) -> bool:
    # Exact types only: marshal would silently drop a subclass's type.
    cls = type(value)
    if cls in _MARSHAL_LEAVES:
        return True
    if depth > _MAX_MARSHAL_DEPTH:
        return False
    if cls in _MARSHAL_CONTAINERS:
        return all(_is_marshal_tree(item, depth + 1) for item in value)
    if cls is dict:
        return all(
            _is_marshal_tree(k, depth + 1) and _is_marshal_tree(v, depth + 1)
            for k, v in value.items()
        )
    return False


def _is_numpy(value: Any) -> bool:
    """An exact ndarray or a numpy scalar: npy keeps neither a subclass's type nor its extra state."""
    cls = type(value)
    if cls.__module__ != "numpy":
        return False
    import numpy as np

    return cls is np.ndarray or isinstance(value, np.generic)


def _dump_numpy(value: Any) -> Parts:
    """A tag byte (``S`` scalar, ``A`` array), an .npy header, then the array's memory, uncopied."""
    import numpy as np

    is_scalar = isinstance(value, np.generic)
    array = np.asarray(value)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    header = io.BytesIO()
    header.write(b"S" if is_scalar else b"A")
    fields = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(header, fields)
    except ValueError:  # a header over 64 KiB (a very long structured dtype)
        np.lib.format.write_array_header_2_0(header, fields)
    return Parts([header.getvalue(), array.reshape(-1).view(np.uint8).data])


def _load_numpy(stream: BinaryIO, total_bytes: int) -> Any:
    """A scalar (tag ``S``) or array (``A``) from npy data; a blob file is read straight into the array."""
    tag = stream.read(1)
    if tag not in (b"S", b"A"):
        raise CorruptValueError(f"damaged npy value: it starts with {tag!r}, not a scalar or array tag")
    array = read_npy(stream, total_bytes - 1)
    if tag == b"A":
        return array
    if array.shape != ():
        raise CorruptValueError(f"damaged npy value: a scalar of shape {array.shape}")
    return array[()]


def load_file(format_name: str, handle: BinaryIO, size_bytes: int, allow_pickle: bool = True) -> tuple[Any, bool]:
    """``loads_checked`` from an open blob holding ``size_bytes``; arrays are read into their memory without a copy."""
    if format_name != FORMAT_NUMPY:
        return loads_checked(format_name, handle.read(), allow_pickle)
    return _load_numpy(handle, size_bytes), False
