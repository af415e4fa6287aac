"""Reading .npy bytes that may be damaged, without letting them size the allocation.

``numpy.lib.format.read_array`` allocates whatever the header declares before
it reads the data, so a damaged header could ask for terabytes. Here the
header's shape and dtype must account for exactly the bytes present first.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from memostore.errors import CorruptValueError

MAX_NPY_HEADER_BYTES = 2**20  # structured dtypes with many fields need more than numpy's default


def read_npy(stream: BinaryIO, total_bytes: int) -> Any:
    """The array in the ``total_bytes`` of npy data from the stream's position on.

    Raises CorruptValueError when the header does not match the bytes (or
    declares objects, which npy data written by memostore never holds).
    """
    import numpy as np

    start = stream.tell()
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(stream, max_header_size=MAX_NPY_HEADER_BYTES)
    except Exception as err:  # numpy raises ValueError, EOFError, SyntaxError... on a bad header
        raise CorruptValueError(f"damaged npy header: {type(err).__name__}: {err}") from None
    count = 1
    for side in shape:
        count *= side
    data_bytes = total_bytes - (stream.tell() - start)
    if dtype.hasobject or count * dtype.itemsize != data_bytes:
        raise CorruptValueError(f"damaged npy value: a header for {shape} of {dtype} over {data_bytes} bytes")
    stream.seek(start)
    try:
        return np.lib.format.read_array(stream, allow_pickle=False, max_header_size=MAX_NPY_HEADER_BYTES)
    except Exception as err:
        raise CorruptValueError(f"damaged npy value: {type(err).__name__}: {err}") from None
