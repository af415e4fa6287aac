"""Pausing Python's cyclic garbage collector, and numpy's huge pages, while a frame builds many objects.

A frame over a million calls allocates millions of small containers (Calls,
Refs, dicts, row tuples) that all stay alive. CPython's generational collector
counts those allocations and keeps re-scanning the growing survivors, which
made building such a frame several times slower than the work itself. None of
these objects form cycles that need collecting while the frame is built, so
the collector is paused for the duration and resumed afterwards.

numpy also asks the kernel for huge pages for every array over 4 MiB. Where
the kernel compacts memory to find them (common in virtual machines), each of
a frame's large temporary columns stalls on page faults: at a million calls,
1.5 to 2 s of system time out of 8. Frames allocate in ordinary pages instead.
"""

from __future__ import annotations

import functools
import gc
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_pages_lock = threading.Lock()
_small_pages_depth = 0  # blocks inside small_pages, in all threads
_huge_pages_before: bool | None = None  # numpy's setting when the first of them began


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


@contextmanager
def small_pages() -> Iterator[None]:
    """Let numpy allocate without asking for huge pages inside the block (in every thread, until
    the last such block ends; numpy's own setting is restored then). Without numpy, or a numpy
    that has no such setting, it does nothing."""
    global _small_pages_depth, _huge_pages_before
    toggle = _huge_page_toggle()
    if toggle is None:
        yield
        return
    with _pages_lock:
        if _small_pages_depth == 0:
            _huge_pages_before = bool(toggle(False))
        _small_pages_depth += 1
    try:
        yield
    finally:
        with _pages_lock:
            _small_pages_depth -= 1
            if _small_pages_depth == 0 and _huge_pages_before is not None:
                toggle(_huge_pages_before)


def _huge_page_toggle() -> Callable[[bool], bool] | None:
    """numpy's switch for huge pages (it returns the previous setting), if numpy is loaded."""
    numpy = sys.modules.get("numpy")
    core = getattr(numpy, "_core", None) or getattr(numpy, "core", None)
    toggle = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return toggle if callable(toggle) else None


def without_gc(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with the cyclic collector paused and numpy in ordinary pages."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with paused_gc(), small_pages():
            return function(*args, **kwargs)
    return wrapper
