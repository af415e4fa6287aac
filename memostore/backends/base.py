"""What a metadata store and a blob store promise, as Protocols.

Every method takes and returns collections, so callers pay one round trip per
batch, never one per row. Misses are left out of results (never None values),
and writes of rows that already exist are no-ops: ids are content-addressed,
so an existing row already holds the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

from memostore.model import Call, Ref


class StoredValue(NamedTuple):
    """A value's row: its cid, format, bytes (None when in a blob) and size."""

    cid: str
    format: str
    inline_data: bytes | None
    size_bytes: int


class Edge(NamedTuple):
    """One argument (direction "in") or output ("out") of a call."""

    call_hid: str
    direction: str
    name: str
    ref_hid: str


class CallRecords(NamedTuple):
    """Stored calls as raw rows, for readers that build objects only when asked.

    ``calls`` rows hold ``model.CALL_ROW_FIELDS``; ``edges`` rows are
    ``(call hid, direction, name, ref hid, ref cid)``, each call's in order of
    position, so outputs keep the order the op returned them in.
    """

    calls: list[tuple[Any, ...]]
    edges: list[tuple[str, str, str, str, str]]


class Snapshot(NamedTuple):
    """What a frame needs of the calls and edges tables, each column as one long string.

    Integer ids are decimal and comma-separated, or a ``range`` when a table's
    ids run without gaps (then they were not read); hids and cids are
    concatenated 16-byte binary ids; flags are one ``0``/``1`` character per
    row; an edge's kind is its name id times two, plus one for an output.
    ``versions`` gives (op version id, op, version) and ``names`` (name id,
    name): small tables, as rows, so names may hold any character. Calls are
    listed in id order, edges by call id, refs in id order.
    """

    versions: list[tuple[int, str, str]]
    names: list[tuple[int, str]]
    call_ids: str | range
    call_hids: bytes
    call_versions: str
    call_failed: str
    edge_calls: str
    edge_refs: str
    edge_kinds: str
    ref_ids: str | range
    ref_hids: bytes
    ref_cids: bytes


class ValueTable(NamedTuple):
    """The values table whole, as a few long strings (see ``Snapshot``): concatenated 16-byte
    ``cids``; ``formats`` joined by ``\x1f``; ``sizes`` (bytes written) and ``lengths`` (inline
    bytes, -1 when the value is in the blob store) as comma-separated decimals; and the inline
    bytes of every row that has them, concatenated in row order."""

    cids: bytes
    formats: str
    sizes: str
    lengths: str
    data: bytes


def calls_from_records(records: CallRecords) -> list[Call]:
    """Call objects (with lazy Refs) from raw rows."""
    sides: dict[str, tuple[dict[str, Ref], dict[str, Ref]]] = {row[0]: ({}, {}) for row in records.calls}
    for call_hid, direction, name, ref_hid, ref_cid in records.edges:
        sides[call_hid][0 if direction == "in" else 1][name] = Ref(ref_cid, ref_hid)
    return [Call.from_row(row, *sides[row[0]]) for row in records.calls]


class StoredOutputs(NamedTuple):
    """What the call path needs of a stored call to return its outputs."""

    call_hid: str
    multi_output: bool
    outputs: Sequence[tuple[str, str, str]]  # (output name, ref hid, ref cid), in order


@dataclass
class WriteBatch:
    """What one flush writes, in one transaction: model objects, not rows.

    ``values`` are the new values (bytes None when in the blob store),
    ``refs`` maps each ref hid to its cid, and ``op_versions`` has one dict
    per op version used (keys ``op``, ``version``, ``source``,
    ``dependencies``, ``first_used``, ``last_used``, and optionally
    ``module`` and ``qualname``, the op's function); ``run_id`` is the stored
    run that computed the calls, if any. ``rows.py`` maps them to
    the tables.
    """

    values: list[StoredValue] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    op_versions: list[dict[str, Any]] = field(default_factory=list)
    run_id: int | None = None  # the run its calls belong to (see ``runs.py``)

    def __bool__(self) -> bool:
        return bool(self.values or self.refs or self.calls or self.op_versions)


class GraphReader(Protocol):
    """The narrow, batched reads a ComputationFrame is built from."""

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]:
        """The stored calls with these hids (misses left out), refs lazy."""

    def call_records(self, call_hids: Iterable[str]) -> CallRecords:
        """The stored calls with these hids as raw rows (misses left out)."""

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]:
        """The hids of every stored call of these ops, all versions."""

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]:
        """Edges that read ("in") or produced ("out") these refs."""

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]:
        """``edges_of_refs`` as raw ``(call hid, name, ref hid)`` rows."""

    def call_count(self) -> int:
        """How many calls are stored."""

    def op_call_count(self, op_name: str) -> int:
        """How many calls of this op (all versions) are stored."""

    def snapshot(self) -> Snapshot:
        """The calls and edges tables whole (for frames over a large part of the store)."""

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]:
        """ref hid -> cid for the stored refs among ``ref_hids``."""

    def value_rows(self, cids: Iterable[str]) -> list[StoredValue]:
        """The rows of the stored values among ``cids``, in no particular order."""

    def value_table(self, max_inline_bytes: int) -> ValueTable | None:
        """The values table whole (for frames loading most of it), or None when its inline bytes
        exceed ``max_inline_bytes`` (then read rows with ``value_rows``)."""


class MetadataStore(GraphReader, Protocol):
    """A GraphReader that also writes, looks calls up, and reports."""

    def write(self, batch: WriteBatch, complete: Callable[[set[str]], WriteBatch] | None = None) -> None:
        """Insert every row of ``batch`` (or of ``complete(cids of the values it names that
        are not stored)``) in one transaction; existing rows are kept."""

    def collection_token(self) -> str:
        """A token that changes whenever any process drops calls or deletes values."""

    def delete_unreferenced(self, inside: Callable[[list[str], set[str]], None] | None = None,
                            notice_s: float = 0.0) -> tuple[int, dict[str, int], list[str]]:
        """Delete refs and values no call uses, excluding every flush, ``notice_s`` after changing
        the collection token; ``inside(deleted blob cids, stored blob cids)`` runs before COMMIT.
        Returns refs deleted, cid -> size, blob cids."""

    def find_outputs(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """The ok call with this hid, else one with this cid, else None."""

    def find_outputs_many(self, call_hids: Iterable[str], call_cids: Iterable[str]
                          ) -> tuple[dict[str, StoredOutputs], dict[str, StoredOutputs], set[str]]:
        """Batched lookup: ok calls by hid, ok calls by cid, and the hids stored as failed."""

    def op_version_rows(self, op_name: str) -> list[dict[str, Any]]:
        """One row per stored version of an op: version, calls, first/last use."""

    def op_version_names(self, op_name: str) -> set[str]:
        """The stored versions of an op."""

    def op_identities(self, op_names: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """op name -> (module, qualified name) of its function, for the stored ops among these."""

    def compatible_version(self, op_name: str, version: str) -> str:
        """The version ``version`` was declared to compute the same as (followed to the last), else itself."""

    def note_compatible(self, op_name: str, version: str, same_as: str) -> None:
        """Record that ``version`` of the op computes what ``same_as`` does."""

    def calls_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Call]:
        """The stored calls that read ("in") or produced ("out") these refs (none for unknown refs)."""

    def op_names(self) -> list[str]:
        """The names of every op with a stored version or call, sorted; empty for an empty store."""

    def counts(self) -> dict[str, int]:
        """Numbers of ops, calls and values, and the bytes of stored values."""

    def close(self) -> None:
        """Release connections; the store can be reopened later."""

    def vacuum(self) -> None:
        """Reclaim the space of deleted rows."""


class ClaimStore(Protocol):
    """Claims that make concurrent maps compute each missing call once."""

    def claim(self, call_hids: Iterable[str], owner: str, ttl_s: float) -> set[str]:
        """Claim these calls unless someone else holds an unexpired claim; returns those ``owner`` holds."""

    def renew_claims(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every claim ``owner`` holds."""

    def release_claims(self, owner: str) -> None:
        """Drop every claim ``owner`` holds (absent ones are fine)."""


class BlobStore(Protocol):
    """Content-addressed bytes for values too large to keep inline."""

    def put(self, cid: str, data: bytes | memoryview | Sequence[bytes | memoryview]) -> None:
        """Store ``data`` (or these buffers, one after another) under ``cid`` atomically; a no-op if present."""

    def get(self, cid: str) -> bytes:
        """The bytes under ``cid``; raises MissingBlobError if absent."""

    def open(self, cid: str) -> BinaryIO:
        """The blob under ``cid`` opened for reading; raises MissingBlobError if absent."""

    def check_size(self, cid: str, handle: BinaryIO, size_bytes: int) -> None:
        """Raise MissingBlobError if the open blob does not hold ``size_bytes``."""

    def exists(self, cids: Sequence[str]) -> set[str]:
        """The cids among ``cids`` that are stored."""

    def reclaim(self, stored: set[str], older_than_s: float) -> tuple[int, int]:
        """Remove files older than ``older_than_s`` that no stored value names; returns (files, bytes)."""

    def delete(self, cids: Iterable[str]) -> int:
        """Remove these blobs (absent ones are skipped); returns bytes freed."""

    def stored_files(self) -> Iterator[tuple[str, int]]:
        """Every blob as (cid, size in bytes), and unfinished writes as (their name, size)."""
