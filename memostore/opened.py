"""What every group of ``Storage``'s methods shares: the parts of an opened store, and loading values.

``Storage`` is split by job: the block and the call path (``storage.py``),
reading a store by op name (``lookups.py``), and upkeep (``upkeep.py``).
Each group reaches the store through the parts declared here, which
``Storage._open`` fills in.
"""

from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, Any

from memostore.model import Ref, lazy_refs, map_refs
from memostore.repair import repair_values

if TYPE_CHECKING:
    from memostore.backends.base import BlobStore
    from memostore.backends.sql import SqlMetadataStore
    from memostore.buffer import CallBuffer
    from memostore.callpath import CallPath, VersionedOp
    from memostore.config import StorageConfig
    from memostore.reader import FlushingReader


class OpenedStore(abc.ABC):
    """The parts of an opened store (see ``Storage._open``), and its values."""

    config: StorageConfig
    reader: FlushingReader
    call_path: CallPath
    _store: SqlMetadataStore
    _buffer: CallBuffer
    _blobs: BlobStore | None
    # (op name, version) -> the stored versions that are the same code under memostore 0.1's formula.
    _former: dict[tuple[str, str], frozenset[str]]

    @abc.abstractmethod
    def _as_current(self) -> contextlib.AbstractContextManager[Any]:
        """This storage as the current one for op calls, without starting a run (see ``Storage``)."""

    @abc.abstractmethod
    def version_of(self, op: VersionedOp, refresh: bool = False) -> str:
        """The version of ``op`` in this storage (see ``Storage.version_of``)."""

    def commit(self) -> None:
        """Write every pending call now (leaving a ``with`` block does this).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:  # a long block can write what it has so far
        ...     _ = double(1)
        ...     print(storage.cache_info()["pending_calls"])
        ...     storage.commit()
        ...     print(storage.cache_info()["pending_calls"])
        1
        0
        """
        self._buffer.flush()

    def unwrap(self, obj: Any) -> Any:
        """The plain value behind a Ref, recursively through lists, tuples, dicts.

        Lazy refs are loaded in one batch and keep their value afterwards.

        >>> from memostore import Ref, Storage
        >>> storage = Storage()
        >>> storage.unwrap([Ref("c" * 32, "h" * 32, 1), {"k": 2}])
        [1, {'k': 2}]
        """
        self._load_into(lazy_refs(obj))
        return map_refs(obj, lambda ref: ref.value)

    def attach(self, obj: Any, inplace: bool = False) -> Any:
        """Load the values of lazy refs in ``obj``.

        Returns ``obj`` with every Ref in memory: the same refs when
        ``inplace``, else copies (the refs passed in stay as they were).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     y = double(1)
        >>> lazy = storage.load_ref(y.hid)
        >>> [ref.in_memory for ref in storage.attach([lazy])], lazy.in_memory
        ([True], False)
        >>> storage.attach(lazy, inplace=True) is lazy, lazy.value
        (True, 2)
        """
        if inplace:
            self._load_into(lazy_refs(obj))
            return obj
        copies = map_refs(obj, lambda ref: ref.attached(ref.value) if ref.in_memory else ref.detached())
        self._load_into(lazy_refs(copies))
        return copies

    def _load_into(self, refs: list[Ref]) -> None:
        if not refs:
            return
        values, problems = self._buffer.load_values_or_problems(ref.cid for ref in refs)
        if problems:  # damaged or gone: recomputed where this process can, else the load's error
            values.update(repair_values(self, refs, problems))
        for ref in refs:
            ref.attach_inplace(values[ref.cid])
