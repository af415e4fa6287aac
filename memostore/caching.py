"""What a storage keeps in this process's memory: ``cache_info``, ``clear_cache`` and ``preload``.

A storage remembers the stored calls it has looked up (up to 200,000), so a
call met again is a hit without a query. ``preload`` fills that cache with
every stored call of some ops in one batched read: a notebook that re-runs
thousands of stored calls then makes no query per call. Values are not
cached: a Ref keeps the value it was given or loaded, and
``storage.attach(refs, inplace=True)`` loads many at once.
"""

from __future__ import annotations

from typing import Any, Iterable

from memostore.callpath import VersionedOp, stored_op_name
from memostore.opened import OpenedStore


class Caching(OpenedStore):
    """Storage's methods about its in-process cache."""

    def cache_info(self) -> dict[str, int]:
        """How much this process holds: ``cached_calls`` (of ``max_cached_calls``),
        ``known_values`` (values it knows are stored, so it does not write them
        again), and the ``pending_calls``, ``pending_values`` and ``pending_bytes``
        that the next commit writes.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> storage.cache_info()
        {'cached_calls': 1, 'max_cached_calls': ..., 'known_values': 2,
         'pending_calls': 0, 'pending_values': 0, 'pending_bytes': 0}
        """
        return self._buffer.cache_info()

    def clear_cache(self) -> None:
        """Forget the cached calls and known values; the next lookups ask the store.

        Pending calls stay pending (``commit`` writes them), and Refs keep their values.

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1)
        >>> storage.clear_cache()
        >>> storage.cache_info()["cached_calls"], len(storage.calls_of(double))
        (0, 1)
        """
        self._buffer.clear_cache()

    def preload(self, ops: VersionedOp | str | Iterable[VersionedOp | str] | None = None) -> int:
        """Cache every stored call of ``ops`` (ops or stored names; by default every stored op)
        in one batched read, so that the hits of the next blocks ask the store nothing.

        Returns how many calls were cached (at most the cache's size).

        >>> from memostore import Storage, op
        >>> @op
        ... def double(x):
        ...     return 2 * x
        >>> storage = Storage()
        >>> with storage:
        ...     _ = double(1), double(2)
        >>> storage.clear_cache()
        >>> storage.preload(double)
        2
        """
        if ops is None:
            names = self._store.op_names()
        else:
            one = isinstance(ops, str) or hasattr(ops, "version_with")
            items: list[Any] = [ops] if one else list(ops)  # type: ignore[arg-type]
            names = [stored_op_name(item, self.reader, "preload") for item in items]
        self.commit()
        store = self._store
        return self._buffer.preload(lambda: store.find_outputs_many(store.call_hids_of_ops(names), [])[0].values())

