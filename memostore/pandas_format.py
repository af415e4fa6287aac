"""DataFrames and Series as bytes without pickle, so they load from untrusted stores.

Supported: columns of numpy dtypes (numbers, booleans, datetimes) and of
strings (the ``str``/``string`` dtypes, or ``object`` columns holding only
strings and missing values: None, NaN and ``pd.NA`` each come back as
themselves); an index and column labels that are a ``RangeIndex`` or one
such column (a ``DatetimeIndex`` keeps its ``freq``). Anything else
(categoricals, nullable integers, MultiIndex, mixed objects) returns None
from ``dump`` and is pickled instead.

Layout: ``MAGIC``, the header length (4 bytes), a header in
``marshal_format`` (the structure, labels and strings), then the npy arrays
the header points to, each after its length (8 bytes). Loading checks every
part against the bytes present, so damaged bytes raise CorruptValueError.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from memostore import marshal_format
from memostore.errors import CorruptValueError
from memostore.npy_format import read_npy

MAGIC = b"MSPD1"
_LABELS = (str, int, float, bool, type(None))
_STRING_DTYPES = ("object", "str", "string")
_MAX_EMPTY_FRAME_ROWS = 2**24  # rows of a frame without columns: nothing else bounds a RangeIndex


class _Unsupported(Exception):
    pass


def dump(value: Any) -> bytes | None:
    """The bytes of a DataFrame or Series, or None if it needs pickle."""
    import pandas as pd

    arrays: list[bytes] = []
    try:
        if isinstance(value, pd.DataFrame):
            header = {"kind": "frame", "index": _index(value.index, arrays), "columns": _index(value.columns, arrays),
                      "values": [_column(value.iloc[:, i], arrays) for i in range(value.shape[1])]}
        elif isinstance(value, pd.Series):
            header = {"kind": "series", "index": _index(value.index, arrays), "name": _label(value.name),
                      "values": _column(value, arrays)}
        else:
            return None
        header_bytes = marshal_format.dumps(header)
    except (_Unsupported, ValueError):
        return None
    return b"".join([MAGIC, struct.pack("<I", len(header_bytes)), header_bytes, *arrays])


def load(data: bytes) -> Any:
    """Rebuild what ``dump`` wrote."""
    import pandas as pd

    if data[:len(MAGIC)] != MAGIC:
        raise CorruptValueError("damaged pandas value: it does not start with the format's magic bytes")
    (length,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    header = marshal_format.decode(data[start:start + length])
    arrays = _read_arrays(memoryview(data)[start + length:])
    if header["kind"] == "frame" and not header["values"] and "range" in header["index"]:
        if len(range(*header["index"]["range"])) > _MAX_EMPTY_FRAME_ROWS:
            raise CorruptValueError("damaged pandas value: a frame without columns but with a huge index")
    index = _rebuild_index(header["index"], arrays)
    if header["kind"] == "series":
        return _series(header["values"], arrays, index, header["name"])
    columns = _rebuild_index(header["columns"], arrays)
    # A dict of Series keeps each column's dtype (an object column stays object).
    frame = pd.DataFrame({i: _series(spec, arrays, index, None) for i, spec in enumerate(header["values"])},
                         index=index)
    frame.columns = columns
    return frame


def _series(spec: dict[str, Any], arrays: list[Any], index: Any, name: Any) -> Any:
    import pandas as pd

    if "npy" in spec:
        return pd.Series(arrays[spec["npy"]], index=index, name=name, copy=False)
    return pd.Series(_strings(spec), index=index, name=name, dtype=_string_dtype(spec))


def _strings(spec: dict[str, Any]) -> list[Any]:
    import pandas as pd

    strings = list(spec["strings"])
    for position in spec.get("na", ()):
        strings[position] = pd.NA
    return strings


def _string_dtype(spec: dict[str, Any]) -> str:
    if spec["dtype"] not in _STRING_DTYPES:
        raise CorruptValueError(f"damaged pandas value: a string column of dtype {spec['dtype']!r}")
    return str(spec["dtype"])


def _label(label: Any) -> Any:
    if type(label) not in _LABELS:
        raise _Unsupported
    return label


def _column(series: Any, arrays: list[bytes]) -> dict[str, Any]:
    import numpy as np

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        return {"npy": _add_array(series.to_numpy(), arrays)}
    if str(dtype) in ("str", "string") or dtype == np.dtype(object):
        values = list(series.to_numpy(dtype=object))
        na = [position for position, v in enumerate(values) if type(v).__name__ == "NAType"]
        for position in na:
            values[position] = None
        if not all(v is None or type(v) is str or (type(v) is float and v != v) for v in values):
            raise _Unsupported
        spec: dict[str, Any] = {"strings": values, "dtype": str(dtype)}
        if na:
            spec["na"] = na
        return spec
    raise _Unsupported


def _index(index: Any, arrays: list[bytes]) -> dict[str, Any]:
    import pandas as pd

    if type(index) is pd.RangeIndex:
        return {"range": (index.start, index.stop, index.step), "name": _label(index.name)}
    if type(index) is pd.MultiIndex:
        raise _Unsupported
    spec = _column(pd.Series(index, copy=False), arrays)
    spec["name"] = _label(index.name)
    spec["type"] = type(index).__name__
    if spec["type"] not in ("Index", "DatetimeIndex"):
        raise _Unsupported
    if getattr(index, "freq", None) is not None:
        spec["freq"] = index.freqstr
    return spec


def _add_array(array: Any, arrays: list[bytes]) -> int:
    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    arrays.append(struct.pack("<Q", buffer.tell()) + buffer.getvalue())
    return len(arrays) - 1


def _read_arrays(view: memoryview) -> list[Any]:
    arrays, offset = [], 0
    while offset < len(view):
        (size,) = struct.unpack("<Q", view[offset:offset + 8])
        offset += 8
        if offset + size > len(view):
            raise CorruptValueError(f"damaged pandas value: an array of {size} bytes, {len(view) - offset} left")
        arrays.append(read_npy(io.BytesIO(view[offset:offset + size]), size))
        offset += size
    return arrays


def _rebuild_index(spec: dict[str, Any], arrays: list[Any]) -> Any:
    import pandas as pd

    if "range" in spec:
        return pd.RangeIndex(*spec["range"], name=spec["name"])
    if spec["type"] == "DatetimeIndex":
        return pd.DatetimeIndex(arrays[spec["npy"]], name=spec["name"], freq=spec.get("freq"))
    if "npy" in spec:
        return pd.Index(arrays[spec["npy"]], name=spec["name"])
    return pd.Index(_strings(spec), name=spec["name"], dtype=_string_dtype(spec))
