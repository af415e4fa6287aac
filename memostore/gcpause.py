"""Pausing Python's cyclic garbage collector while a frame builds many objects.

A frame over a million calls allocates millions of small containers (Calls,
Refs, dicts, row tuples) that all stay alive. CPython's generational collector
counts those allocations and keeps re-scanning the growing survivors, which
made building such a frame several times slower than the work itself. None of
these objects form cycles that need collecting while the frame is built, so
the collector is paused for the duration and resumed afterwards.
"""

from __future__ import annotations

import functools
import gc
from contextlib import contextmanager
from typing import Callable, Iterator, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block; re-enable it only if it was on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_gc(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with the cyclic collector paused."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc():
            return function(*args, **kwargs)
    return wrapper
