"""``storage.check()``: verify a whole store, and optionally remove what cannot be served.

The check reads every value that a stored call uses and verifies it against
its content id, exactly as a load would; it also asks SQLite for its own
integrity check, finds edges naming calls or values that are not stored,
and blob files that no value names. ``repair=True`` drops the calls that
produced or used a damaged or missing value (with every call downstream),
then reclaims the unreferenced values, so the next run recomputes them.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Callable

from memostore.backends.base import BlobStore, MetadataStore, StoredValue
from memostore.backends.snapshots import calls_with_value, snapshot_edges
from memostore.buffer import CallBuffer
from memostore.errors import (
    CorruptValueError,
    MemostoreError,
    MissingBlobError,
    NotStoredError,
    SerializationError,
    UntrustedValueError,
)
from memostore.files import SERIALIZER_NAME, stored_file_cid
from memostore.serialization import FORMAT_PICKLE, USER_PREFIX, split_checksum

FILE_FORMAT = USER_PREFIX + SERIALIZER_NAME
CHECK_BATCH_VALUES = 1000  # values read per query: bounds the inline bytes held at once


@dataclasses.dataclass
class CheckReport:
    """What ``storage.check`` found and, with ``repair=True``, removed.

    ``damaged`` maps a content id to what is wrong with it (damaged bytes, a
    missing or cut-short blob, no value row at all); ``unverified`` lists
    values that could not be verified: pickles when the storage has
    ``allow_pickle=False``, values of a format this process has not
    registered, and pickles written before checksums whose bytes no longer
    give their content id.

    >>> from memostore import Storage, op
    >>> @op
    ... def double(x): return 2 * x
    >>> with Storage() as storage:
    ...     _ = double(1)
    >>> report = storage.check()
    >>> report.ok, report.values_checked, report.damaged, report.dropped_calls
    (True, 2, {}, [])
    """

    database_problems: list[str] = dataclasses.field(default_factory=list)
    values_checked: int = 0
    bytes_checked: int = 0
    damaged: dict[str, str] = dataclasses.field(default_factory=dict)
    unverified: list[str] = dataclasses.field(default_factory=list)
    dangling_edges: int = 0
    orphan_files: list[str] = dataclasses.field(default_factory=list)
    dropped_calls: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every call in the store can be served as stored.

        >>> from memostore import Storage
        >>> Storage().check().ok
        True
        """
        return not (self.database_problems or self.damaged or self.dangling_edges)


def check_store(store: MetadataStore, buffer: CallBuffer, blobs: BlobStore | None, db_path: str | None,
                repair: bool, drop_calls: Callable[[list[str]], Any], cleanup: Callable[[], Any]) -> CheckReport:
    """Verify the store (see the module docstring); ``drop_calls`` and ``cleanup`` repair it."""
    report = CheckReport(database_problems=_database_problems(db_path))
    snapshot = store.snapshot()
    call_hids = {snapshot.call_hids[i:i + 16].hex() for i in range(0, len(snapshot.call_hids), 16)}
    edges = snapshot_edges(snapshot)
    blob_cids = _check_values(store, buffer, sorted({cid for _, cid, _ in edges if cid is not None}), report)
    report.dangling_edges = sum(1 for call_hid, cid, _ in edges
                                if call_hid is None or cid is None or report.damaged.get(cid) == _NOT_STORED)
    if blobs is not None:
        report.orphan_files = [name for name, _ in blobs.stored_files() if name not in blob_cids]
    if repair:
        doomed = {hid for hits in calls_with_value(snapshot, report.damaged).values() for hid, _ in hits}
        doomed |= {call_hid for call_hid, cid, _ in edges if cid is None and call_hid is not None}
        report.dropped_calls = sorted(call.hid for call in drop_calls(sorted(doomed & call_hids)))
        cleanup()
    return report


_NOT_STORED = "no value with this content id is stored"


def _check_values(store: MetadataStore, buffer: CallBuffer, cids: list[str], report: CheckReport) -> set[str]:
    """Load and verify every value among ``cids``; returns the cids of those kept in blobs."""
    blob_cids: set[str] = set()
    for start in range(0, len(cids), CHECK_BATCH_VALUES):
        batch = cids[start:start + CHECK_BATCH_VALUES]
        rows = store.value_rows(batch)
        for cid in set(batch) - {row[0] for row in rows}:
            report.damaged[cid] = _NOT_STORED
        for row in rows:
            if row[2] is None:
                blob_cids.add(row[0])
            if row[1] == FORMAT_PICKLE and not buffer.allow_pickle:
                report.unverified.append(row[0])
                continue
            try:
                verified = _vouched_by_checksum(buffer, row) or buffer.load_row(row)[1]
            except (CorruptValueError, MissingBlobError, NotStoredError) as err:
                report.damaged[row[0]] = str(err)
                continue
            except (UntrustedValueError, SerializationError, MemostoreError):
                verified = False  # cannot be loaded here (a files folder, a setting): not damage
            if verified:
                report.values_checked += 1
                report.bytes_checked += row[3]
            else:
                report.unverified.append(row[0])
    return blob_cids


def _vouched_by_checksum(buffer: CallBuffer, row: StoredValue) -> bool:
    """Whether a pickle's or registered format's bytes match the checksum written with them.

    Such values are verified by their bytes alone (a File also by the content id its bytes give):
    unpickling them here could fail
    for reasons that are not damage (a class this process cannot import) and has
    side effects (a File is written out), and must never make check drop a good call.
    """
    cid, format_name, data, size_bytes = row
    if format_name != FORMAT_PICKLE and not format_name.startswith(USER_PREFIX):
        return False
    if data is None:
        if buffer.blobs is None:
            return False
        with buffer.blobs.open(cid) as handle:
            data = handle.read()
    if len(data) != size_bytes:
        raise CorruptValueError(f"{len(data)} bytes are stored, {size_bytes} were written")
    payload, vouched = split_checksum(data)
    if format_name == FILE_FORMAT and stored_file_cid(payload) != cid:  # checked like a load, unwritten
        raise CorruptValueError("it holds a File whose name or bytes are not those of its content id")
    return vouched


def _database_problems(db_path: str | None) -> list[str]:
    """SQLite's own ``PRAGMA integrity_check`` (a server database checks itself)."""
    if db_path is None:
        return []
    try:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as err:
        return [f"the database cannot be checked: {err}"]
    problems = [row[0] for row in rows]
    return [] if problems == ["ok"] else problems
