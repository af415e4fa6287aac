"""What a Ref refuses: being used as the value it stands for.

A Ref is a value's identity, not the value. Code that adds, compares or
truth-tests one, or hands it to numpy, means the value, and without these
refusals would often get a wrong answer and no error: ``np.array(ref)`` is an
object array holding the Ref, ``np.sum(ref)`` the Ref itself, ``np.ndim(ref)``
0 even when the value is a matrix. Each such use raises RefUsedAsValueError,
which says to unwrap first and, where this process knows it, names the op
whose output the Ref is.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from typing import Any

from memostore.errors import RefUsedAsValueError

HID_PREVIEW_CHARS = 3
_NUMPY_DIR = f"{os.sep}numpy{os.sep}"
_ISNA_HINT = "; pd.isna(ref) asks numpy too: a table's missing Ref is None, so test `cell is None`"


def misuse_message(ref: Any, what: str, holder: str = "", maybe_held: bool = False) -> str:
    """The message for ``what`` done to ``ref`` as if it were its value (``holder``: the container it was
    in; ``maybe_held``: alone or in a container, which numpy's C conversion does not tell).

    >>> class Fake(NotAValue):
    ...     hid = "8f5" + "0" * 29
    >>> misuse_message(made_by(Fake(), "train"), "np.mean()")  # doctest: +ELLIPSIS
    "np.mean() on Ref(hid=8f5...), an output of op 'train': a Ref stands for a stored value, ..."
    >>> misuse_message(Fake(), "np.mean()", "list")  # doctest: +ELLIPSIS
    'np.mean() on a list holding Refs, such as Ref(hid=8f5...): ... storage.unwrap(refs) the list of values'
    """
    maker = getattr(ref, "_made_by", None)
    origin = f", an output of op {maker!r}" if maker else ""
    shown = f"Ref(hid={ref.hid[:HID_PREVIEW_CHARS]}...){origin}"
    if holder:
        return (f"{what} on a {holder} holding Refs, such as {shown}: a Ref stands for a stored value, it is not "
                f"the value, and numpy reads each item of the {holder}; storage.unwrap(ref) gives a value, "
                f"storage.unwrap(refs) the {holder} of values")
    if maybe_held:
        return (f"{what} on {shown}, or on a list holding it: a Ref stands for a stored value, it is not the "
                "value; storage.unwrap(ref) gives the value (storage.unwrap(refs) a list's values)")
    return (f"{what} on {shown}: a Ref stands for a stored value, it is not the value; use storage.unwrap(ref) to get "
            "the value")


def ref_outside_block(op_name: str, signature: inspect.Signature, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> str:
    """The message for an op given a Ref outside a block, naming the argument (or arguments) it went to."""
    try:
        bound = signature.bind_partial(*args, **kwargs).arguments
    except TypeError:  # the plain call would fail anyway: name positions
        bound = {**{f"at position {position}": value for position, value in enumerate(args)}, **kwargs}
    names = [name for name, value in bound.items() if isinstance(value, NotAValue)
             or (isinstance(value, (tuple, dict)) and any(isinstance(item, NotAValue) for item in
                                                         (value.values() if isinstance(value, dict) else value)))]
    listed = ", ".join(name if name.startswith("at ") else repr(name) for name in names)
    plural = "s" if len(names) > 1 else ""
    return (f"op {op_name!r}, argument{plural} {listed}: got a Ref outside a `with storage:` block; call the op "
            "inside the block (where Refs are inputs), or pass its value: storage.unwrap(ref)")


def _numpy_misuse(ref: Any) -> str:
    """What numpy did with ``ref``, read from the Python frames that called it (only on this error path):
    pandas' isna, a numpy function given a list holding Refs, or np.array/np.asarray called directly."""
    frame: types.FrameType | None = sys._getframe(2)  # the Python code numpy's C conversion was called from
    outer = None
    try:
        code = frame.f_code if frame is not None else None
        if code is not None and code.co_name == "_isna" and "pandas" in code.co_filename:
            return misuse_message(ref, "pd.isna()") + _ISNA_HINT
        while frame is not None and _NUMPY_DIR in frame.f_code.co_filename:
            outer, frame = frame, frame.f_back
        if outer is None:
            return misuse_message(ref, "np.array() or np.asarray()", maybe_held=True)
        code = outer.f_code
        first = outer.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
        holder = type(first).__name__ if isinstance(first, (list, tuple)) else ""
        return misuse_message(ref, f"np.{code.co_name}()", holder)
    finally:
        del frame, outer  # a frame kept would keep its locals alive


def made_by(ref: Any, op_name: str) -> Any:
    """``ref``, noted as an output of ``op_name`` (for messages in this process only; not pickled)."""
    ref._made_by = op_name
    return ref


class NotAValue:
    """Refuses, with RefUsedAsValueError, what only a value can do: arithmetic, ordering, truth,
    ``len``, iteration, indexing, and numpy (``np.array``, ufuncs, ``np.mean`` and the other
    functions numpy dispatches on their arguments)."""

    __slots__ = ("_made_by",)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        if dtype is not None and np.dtype(dtype) == np.dtype(object):  # an array of Refs, asked for by name
            holder = np.empty((), dtype=object)
            holder[()] = self
            return holder
        raise RefUsedAsValueError(_numpy_misuse(self))

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        raise RefUsedAsValueError(misuse_message(self, f"numpy's {getattr(ufunc, '__name__', ufunc)}"))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        first = args[0] if args else None  # np.stack(refs), np.concatenate(refs): dispatched on the items
        holder = type(first).__name__ if isinstance(first, (list, tuple)) and any(i is self for i in first) else ""
        raise RefUsedAsValueError(misuse_message(self, f"np.{getattr(func, '__name__', func)}()", holder))


def _refusal(what: str) -> Any:
    def refuse(self: NotAValue, *args: Any) -> Any:
        raise RefUsedAsValueError(misuse_message(self, what))
    return refuse


for _method, _what in [("__bool__", "a truth test (if ref:)"), ("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"),
                       ("__ge__", ">="), ("__float__", "float()"), ("__int__", "int()"), ("__index__", "an index"),
                       ("__complex__", "complex()"), ("__neg__", "-"), ("__pos__", "+"), ("__invert__", "~"),
                       ("__abs__", "abs()"), ("__round__", "round()"), ("__trunc__", "math.trunc()"),
                       ("__floor__", "math.floor()"), ("__ceil__", "math.ceil()"), ("__iter__", "iteration"),
                       ("__len__", "len()"), ("__getitem__", "indexing"), ("__contains__", "in")]:
    setattr(NotAValue, _method, _refusal(_what))
for _operator in ("add", "sub", "mul", "truediv", "floordiv", "mod", "divmod", "pow", "matmul", "lshift", "rshift",
                  "and", "or", "xor"):
    for _side in ("", "r"):
        setattr(NotAValue, f"__{_side}{_operator}__", _refusal(f"the operator __{_side}{_operator}__"))
