"""Call modes: ``storage.noop()`` and ``storage.allow_new_calls(False)``.

``with storage.noop():`` runs ops as their plain functions on plain values
(Refs passed in are loaded) and stores nothing. Like the ``with storage:``
block, it is a ContextVar: it covers the code in the block, in this thread
or task (and ``storage.map``, which then calls the plain function per item),
and the innermost block wins: ``with storage:`` inside a noop block
memoizes again. The worker threads of a pool started in a noop block, and
worker processes an op is sent to from one, run ops as plain functions too.

``storage.allow_new_calls(False)`` is a setting of the storage, seen by
every thread and carried to worker processes: stored calls load as usual,
and a call that is not stored raises ``NewCallNotAllowedError`` (naming the
op and the arguments) instead of running. Used as a context manager, it
restores the former setting on leaving the block.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import reprlib
import threading
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from memostore.errors import NewCallNotAllowedError, StorageOptionError
from memostore.model import Ref
from memostore.opened import OpenedStore

if TYPE_CHECKING:
    from memostore.storage import Storage

# The storage of the innermost noop block in this thread or task; None in a `with storage:` block.
_noop: contextvars.ContextVar[Any] = contextvars.ContextVar("memostore_noop", default=None)
_noop_lock = threading.Lock()
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def noop_storage() -> Any:
    """The storage whose ``noop()`` block is the innermost block here, or None."""
    return _noop.get()


def noop_open(storage: Any) -> bool:
    """Whether a noop block of ``storage`` is open in some thread: the worker
    threads of a pool started inside it (which have no block of their own) run ops plain."""
    return bool(storage._noop_blocks > 0)


def enter_mode(noop_of: Any) -> contextvars.Token[Any]:
    """Make the innermost block a noop block of ``noop_of`` (None: a memoizing block)."""
    return _noop.set(noop_of)


def leave_mode(token: contextvars.Token[Any]) -> None:
    """Back to the mode of the enclosing block."""
    _noop.reset(token)


class _Setting:
    """What ``allow_new_calls`` returns: the setting is made already; a ``with`` restores it after."""

    def __init__(self, storage: CallModes, former: bool) -> None:
        self._storage = storage
        self._former = former

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        self._storage.config = dataclasses.replace(self._storage.config, allow_new_calls=self._former)


class CallModes(OpenedStore):
    """Storage's call modes: ``noop`` and ``allow_new_calls``."""

    _noop_blocks = 0  # noop blocks of this storage open in any thread (see noop_open)

    @contextlib.contextmanager
    def noop(self) -> Iterator[None]:
        """A block where ops run as plain functions on plain values and store nothing.

        Refs passed in are loaded from this storage; ops return plain values.
        Also inside a ``with storage:`` block; a ``with storage:`` inside it memoizes again.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage.noop():
        ...     double(1)
        2
        >>> storage.calls_of(double)
        []
        """
        token = enter_mode(self)
        with _noop_lock:
            self._noop_blocks += 1
        try:
            yield
        finally:
            with _noop_lock:
                self._noop_blocks -= 1
            leave_mode(token)

    def allow_new_calls(self, allowed: bool = True) -> Any:
        """Whether calls that are not stored may run (True, the default) or raise
        ``NewCallNotAllowedError`` without running: the way to check that a
        notebook reproduces only stored results.

        A setting of the storage, for every thread and worker process; used
        as ``with storage.allow_new_calls(False):``, the former setting comes
        back when the block ends.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> with storage, storage.allow_new_calls(False):
        ...     stored = double(1)
        ...     double(2)
        Traceback (most recent call last):
        memostore.errors.NewCallNotAllowedError: ...
        >>> storage.unwrap(stored)  # the stored call was a hit
        2
        """
        if not isinstance(allowed, bool):
            raise StorageOptionError(f"storage.allow_new_calls takes True or False, got {allowed!r}")
        former = self.config.allow_new_calls
        self.config = dataclasses.replace(self.config, allow_new_calls=allowed)
        return _Setting(self, former)

    def __call__(self, mode: str = "run") -> Any:
        """mandala's spelling: ``with storage(mode="noop"):`` is ``with storage.noop():``,
        and ``with storage():`` (mode ``"run"``) is ``with storage:``."""
        if mode == "run":
            return self
        if mode == "noop":
            return self.noop()
        raise StorageOptionError(f"storage(mode={mode!r}): the modes are 'run' and 'noop'")


def refuse_new_call(storage: Storage, op_name: str, arguments: Mapping[str, Any], more: int = 0) -> None:
    """Raise NewCallNotAllowedError for a call of ``op_name`` that is not stored, if new calls are refused."""
    if storage.config.allow_new_calls:
        return
    shown = {name: _shown(value) for name, value in arguments.items()}
    call = f"{op_name}({', '.join(f'{name}={text}' for name, text in shown.items())})"
    others = f" (and {more} more calls of it)" if more else ""
    raise NewCallNotAllowedError(
        f"op {op_name!r}: the call {call}{others} is not stored, and this storage does not allow new calls "
        f"(storage.allow_new_calls(False)), so it was not run; storage.explain({op_name!r}, ...) says why it "
        "is not found (changed code or arguments); to run it, leave the allow_new_calls(False) block "
        "or call storage.allow_new_calls(True)",
        op=op_name, arguments=dict(arguments))


def _shown(value: Any) -> str:
    if isinstance(value, Ref):
        return _short.repr(value.value) if value.in_memory else repr(value)
    return _short.repr(value)
