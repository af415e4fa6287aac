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

from typing import Any

from memostore.errors import RefUsedAsValueError

HID_PREVIEW_CHARS = 3


def misuse_message(ref: Any, what: str) -> str:
    """The message for ``what`` done to ``ref`` as if it were its value.

    >>> class Fake(NotAValue):
    ...     hid = "8f5" + "0" * 29
    >>> misuse_message(made_by(Fake(), "train"), "np.mean()")  # doctest: +ELLIPSIS
    "np.mean() on Ref(hid=8f5...), an output of op 'train': a Ref stands for a stored value, ..."
    """
    maker = getattr(ref, "_made_by", None)
    origin = f", an output of op {maker!r}" if maker else ""
    return (f"{what} on Ref(hid={ref.hid[:HID_PREVIEW_CHARS]}...){origin}: a Ref stands for a stored value, it is "
            "not the value; use storage.unwrap(ref) to get the value")


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
        raise RefUsedAsValueError(misuse_message(self, "np.array() or np.asarray()") + "; pd.isna(ref) asks "
                                  "numpy too: a table's missing Ref is None, so test `cell is None`")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        raise RefUsedAsValueError(misuse_message(self, f"numpy's {getattr(ufunc, '__name__', ufunc)}"))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise RefUsedAsValueError(misuse_message(self, f"np.{getattr(func, '__name__', func)}()"))


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
