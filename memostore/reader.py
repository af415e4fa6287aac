"""The GraphReader a ComputationFrame reads through: flush pending calls, then ask the store."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import numpy as np

from memostore import value_columns
from memostore.backends.base import CallRecords, Edge, MetadataStore, Snapshot, StoredValue
from memostore.buffer import CallBuffer
from memostore.model import Call
from memostore.value_columns import TableAhead, load_value_column


class FlushingReader:
    """The GraphReader a ComputationFrame reads through: flush, then ask the store."""

    def __init__(self, store: MetadataStore, buffer: CallBuffer) -> None:
        self._store = store
        self._buffer = buffer
        self._ahead: TableAhead | None = None

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]:
        self._buffer.flush()
        return self._store.calls_by_hids(call_hids)

    def call_records(self, call_hids: Iterable[str]) -> CallRecords:
        self._buffer.flush()
        return self._store.call_records(call_hids)

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]:
        self._buffer.flush()
        return self._store.ref_edge_rows(ref_hids, direction)

    def call_count(self) -> int:
        self._buffer.flush()
        return self._store.call_count()

    def op_call_count(self, op_name: str) -> int:
        self._buffer.flush()
        return self._store.op_call_count(op_name)

    def snapshot(self) -> Snapshot:
        self._buffer.flush()
        return self._store.snapshot()

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]:
        self._buffer.flush()
        return self._store.call_hids_of_ops(op_names)

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]:
        self._buffer.flush()
        return self._store.edges_of_refs(ref_hids, direction)

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]:
        self._buffer.flush()
        return self._store.ref_cids(ref_hids)

    def value_rows(self, cids: Iterable[str]) -> list[StoredValue]:
        self._buffer.flush()
        return self._store.value_rows(cids)

    def load_values(self, cids: Iterable[str]) -> dict[str, Any]:
        return self._buffer.load_values(cids)

    def load_value_column(self, cids: np.ndarray) -> np.ndarray:
        return load_value_column(self._buffer, self._store, cids, self._ahead)

    @contextlib.contextmanager
    def values_ahead(self, values: int) -> Iterator[None]:
        """While inside, the values table is read on a second thread for ``load_value_column``
        (``memostore.value_columns``), when up to ``values`` values will be loaded, enough to read
        the table whole; nothing is read when one read runs already."""
        if values < value_columns.SCAN_MIN_VALUES or self._ahead is not None:
            yield
            return
        self._buffer.flush()
        ahead = self._ahead = TableAhead(self._store)
        try:
            yield
        finally:
            self._ahead = None
            ahead.wait()

    def op_version_rows(self, op_name: str) -> list[dict[str, Any]]:
        self._buffer.flush()
        return self._store.op_version_rows(op_name)

    def calls_of_op(self, op_name: str) -> list[Call]:
        """Every stored call of one op, all versions, with lazy refs."""
        self._buffer.flush()
        return self._store.calls_by_hids(self._store.call_hids_of_ops([op_name]))
