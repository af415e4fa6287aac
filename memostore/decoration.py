"""What ``@op`` refuses at decoration, naming the function: unknown options, what cannot be an op,
output names that cannot name outputs. Kept apart from ``op.py``, which runs calls."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Sequence

from memostore.errors import OpDefinitionError

OPTIONS = ("name", "output_names", "nout", "version", "ignore", "ignore_args")


def check_options(func: Any, unknown: dict[str, Any]) -> None:
    for option, value in unknown.items():
        close = difflib.get_close_matches(option, OPTIONS, n=1)
        hint = f"did you mean {close[0]}=? " if close else ""
        raise OpDefinitionError(
            f"@op on {describe(func)}: unknown option {option}={value!r}; {hint}"
            f"the options are {', '.join(OPTIONS)}")


def check_function(func: Any, name: str | None, version: Any) -> None:
    """Refuse at decoration what cannot be an op, naming the function."""
    what = describe(func)
    if inspect.isclass(func):
        raise OpDefinitionError(f"@op on {what}: a class cannot be an op; decorate a function "
                                "(or a method) that returns the value to store")
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise OpDefinitionError(f"@op on {what}: async functions cannot be ops; "
                                "decorate a plain def (run the event loop inside it if needed)")
    if inspect.isgeneratorfunction(func):
        raise OpDefinitionError(f"@op on {what}: a generator function returns an iterator, which cannot be "
                                "stored; return a list (or tuple) of the items instead")
    if version is not None and not isinstance(version, str):
        raise OpDefinitionError(f"@op on {what}: version must be a string, got {type(version).__name__} "
                                f"{version!r}; write version={str(version)!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise OpDefinitionError(f"@op on {what}: name must be a non-empty string, got {name!r}")
    if name is None and getattr(func, "__name__", None) == "<lambda>":
        raise OpDefinitionError(f"@op on {what}: a lambda has no name of its own, and two lambdas would share "
                                "one op's calls; write op(lambda ..., name='...') or use a def")


def describe(func: Any) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    return repr(f"{module}.{qualname}" if module and qualname else func)


def check_outputs(name: str, output_names: Sequence[str] | None, nout: int | None) -> tuple[str, ...] | None:
    if output_names is not None:
        if isinstance(output_names, str):
            raise OpDefinitionError(
                f"op {name!r}: output_names must be a list of names, got the string {output_names!r}")
        try:
            names = tuple(output_names)
        except TypeError:
            raise OpDefinitionError(f"op {name!r}: output_names must be a list of names (strings), got "
                                    f"{type(output_names).__name__} {output_names!r}; write "
                                    "output_names=['a', 'b'], or nout=... for numbered outputs") from None
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise OpDefinitionError(f"op {name!r}: output_names must be distinct non-empty strings, got {names}")
        if nout is not None and nout != len(names):
            raise OpDefinitionError(
                f"op {name!r}: nout={nout} disagrees with {len(names)} output_names {list(names)}")
        return names
    if nout is not None:
        if not isinstance(nout, int) or isinstance(nout, bool) or nout < 1:
            raise OpDefinitionError(f"op {name!r}: nout must be a positive int, got {nout!r}")
        return tuple(f"output_{i}" for i in range(nout))
    return None
