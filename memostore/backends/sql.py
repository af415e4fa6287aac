"""The metadata store on SQLAlchemy Core: SQLite or PostgreSQL, the same schema on both.

``SqlMetadataStore`` answers the batched reads of ``GraphReader`` and the
call path's lookups here, and hands writes to ``writes.py``, connections and
transactions to ``database.py``, schema versions to ``migrations``, and the
mapping between model objects and rows to ``rows.py``. Ids cross this
boundary as the model's hex strings; inside, they are 16-byte keys.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import bindparam, func, select

from memostore.backends import dropping, rows, runs, schema, writes
from memostore.backends.base import (
    CallRecords,
    Edge,
    Snapshot,
    StoredOutputs,
    StoredValue,
    ValueTable,
    WriteBatch,
    calls_from_records,
)
from memostore.backends.database import Database
from memostore.backends.migrations import open_schema, upgrade
from memostore.backends.statements import (
    SCAN_MIN_FRACTION,
    SCAN_MIN_IDS,
    SNAPSHOT_SAMPLES,
    all_values_statement,
    call_edges_statement,
    call_rows_statement,
    calls_of_ref_statement,
    calls_of_refs_statement,
    counts_statement,
    find_many_statement,
    find_outputs_statement,
    group_outputs,
    op_call_count_statement,
    op_call_hids_statement,
    op_version_names_statement,
    op_versions_statement,
    ref_cids_statement,
    ref_edges_statement,
    snapshot_statements,
    value_table_statements,
    values_statement,
)
from memostore.backends.vocabulary import Vocabulary
from memostore.config import DEFAULT_IDLE_CLOSE_S, DEFAULT_RETRY_S
from memostore.gcpause import paused_gc
from memostore.hashing import tagged_digest
from memostore.model import Call

# calls_of_ref_statement(output?, errors?), each compiled once (see ``SqlMetadataStore.calls_of_ref``).
_CALLS_OF_REF = {(output, errors): (f"calls_of_ref_{output}_{errors}",
                                    functools.partial(calls_of_ref_statement, output, errors))
                 for output in (False, True) for errors in (False, True)}
_PARAMETERS = ["hid"]  # of calls_of_ref_statement, as it binds them


class SqlMetadataStore:
    """Calls, refs, values and edges in a SQLite or PostgreSQL database.

    >>> store = SqlMetadataStore("sqlite://")
    >>> store.counts()
    {'ops': 0, 'calls': 0, 'values': 0, 'bytes': 0}
    """

    def __init__(self, url: str, retry_s: float = DEFAULT_RETRY_S, idle_close_s: float = DEFAULT_IDLE_CLOSE_S) -> None:
        self.url = url
        self.db = Database(url, retry_s, idle_close_s)
        self.is_sqlite = self.db.is_sqlite
        open_schema(self.db)
        self.vocabulary = Vocabulary(self.db)

    def _connection(self) -> Any:
        return self.db.connection()

    def close(self) -> None:
        """Release every connection; the next use reopens one."""
        self.db.close()

    def backup(self, path: Path) -> list[str]:
        """A consistent copy of this SQLite store at ``path`` (see ``Database.backup``).

        Returns the cids of the copy's values that live in the blob store.
        """
        self.db.backup(path)
        copy = SqlMetadataStore("sqlite:///" + str(Path(path).resolve()))
        try:
            v = schema.values.c
            found = copy.db.fetch(copy.db.statement("blob_cids", lambda: select(v.cid).where(v.inline_data.is_(None))))
        finally:
            copy.close()
        return [row[0].hex() for row in found]

    def vacuum(self) -> None:
        """Give the space of deleted rows back to the file system (SQLite) or the server (PostgreSQL)."""
        self.db.vacuum()

    def upgrade(self) -> list[str]:
        """Apply the migrations this store lacks; returns the revisions applied."""
        return upgrade(self.db)

    # --- writes -----------------------------------------------------------------

    def write(self, batch: WriteBatch, complete: Callable[[set[str]], WriteBatch] | None = None) -> None:
        """Insert every row of ``batch`` (or of ``complete(missing cids)``) in one transaction;
        existing rows are kept (see ``writes``)."""
        writes.write_batch(self.db, self.vocabulary, batch, complete)

    # --- garbage collection: safe against concurrent writers (see ``collection``) ----------

    def collection_token(self) -> str:
        """A token that changes whenever calls are dropped or values deleted, by any process."""
        return writes.collection_token(self.db)

    def drop_calls(self, call_hids: Iterable[str], dependents: bool) -> tuple[list[str], list[Call]]:
        """Delete these calls, and with ``dependents`` every call downstream, in one transaction.

        Returns the hids that are not stored (then nothing is deleted), and the deleted calls.
        """
        with paused_gc():  # thousands of rows and Calls that all stay alive: nothing for the collector
            missing, calls = dropping.drop_calls(self.db, call_hids, dependents, self._dropping_calls)
            return missing, calls or []

    def delete_unreferenced(self, inside: Callable[[list[str], set[str]], None] | None = None,
                            notice_s: float = 0.0) -> tuple[int, dict[str, int], list[str]]:
        """Delete refs no call uses, then values no ref uses, alone against every flush:
        (refs, cid -> size, blob cids); see ``writes.delete_unreferenced``."""
        return writes.delete_unreferenced(self.db, inside, notice_s)

    # --- runs (see ``runs.py``) -------------------------------------------------------

    def insert_run(self, row: dict[str, Any]) -> int:
        """Store a new run; returns its id."""
        return runs.insert_run(self.db, row)

    def finish_run(self, run_id: int, finished_at: float, counts: tuple[int, int, int], loaded: bytes | None) -> None:
        """Record a run's end, its counts (computed, hits, failed) and the calls it found stored."""
        runs.finish_run(self.db, run_id, finished_at, counts, loaded)

    def run_rows(self) -> list[dict[str, Any]]:
        """Every stored run, oldest first."""
        return runs.run_rows(self.db)

    def run_call_hids(self, run_id: int) -> tuple[list[str], list[str]]:
        """(calls the run computed or recorded, calls it found stored), as hids."""
        return runs.run_call_hids(self.db, run_id)

    def call_run_ids(self, call_hids: Iterable[str]) -> dict[str, int]:
        """call hid -> the run that computed it (calls stored before runs were recorded left out)."""
        return runs.call_run_ids(self.db, call_hids)

    # --- claims -------------------------------------------------------------------

    def claim(self, call_hids: Iterable[str], owner: str, ttl_s: float) -> set[str]:
        """Claim these calls unless someone else holds an unexpired claim; returns those ``owner`` holds."""
        return writes.claim(self.db, call_hids, owner, ttl_s)

    def renew_claims(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every claim ``owner`` holds."""
        writes.renew_claims(self.db, owner, ttl_s)

    def release_claims(self, owner: str) -> None:
        """Drop every claim ``owner`` holds (absent ones are fine)."""
        writes.release_claims(self.db, owner)

    # --- the call path ------------------------------------------------------------

    def find_outputs(self, call_hid: str, call_cid: str) -> StoredOutputs | None:
        """The ok call with this hid, else one with this cid, else None."""
        found = self.db.fetch(self.db.statement("find_outputs", find_outputs_statement),
                              {"hid": rows.bound_key(call_hid), "cid": rows.bound_key(call_cid)})
        if not found:
            return None
        if len(found) > 1:
            found.sort(key=lambda row: row[5])  # output position
        name = self.vocabulary.name
        outputs = [(name(name_id), ref_hid.hex(), ref_cid.hex())
                   for _, _, name_id, ref_hid, ref_cid, _ in found if name_id is not None]
        return StoredOutputs(found[0][0].hex(), bool(found[0][1]), outputs)

    def find_outputs_many(self, call_hids: Iterable[str], call_cids: Iterable[str]
                          ) -> tuple[dict[str, StoredOutputs], dict[str, StoredOutputs], set[str]]:
        """Batched lookup: ok calls by hid, ok calls by cid (for the cids given), failed hids."""
        name = self.vocabulary.name
        by_hid: dict[str, StoredOutputs] = {}
        failed: set[str] = set()
        found = self.db.fetch_in("many_by_hid", find_many_statement(by_cid=False), rows.keys(call_hids))
        for hid, _, outputs, status in group_outputs(found, name):
            if status == schema.STATUS_FAILED:
                failed.add(hid.hex())
            else:
                by_hid[hid.hex()] = StoredOutputs(*outputs)
        by_cid: dict[str, StoredOutputs] = {}
        found = self.db.fetch_in("many_by_cid", find_many_statement(by_cid=True), rows.keys(call_cids))
        for _, cid, outputs, status in group_outputs(found, name):
            if status == schema.STATUS_OK:
                by_cid.setdefault(cid.hex(), StoredOutputs(*outputs))
        return by_hid, by_cid, failed

    # --- GraphReader -----------------------------------------------------------------

    def calls_by_hids(self, call_hids: Iterable[str]) -> list[Call]:
        """The stored calls with these hids (misses left out), refs lazy."""
        return calls_from_records(self.call_records(call_hids))

    def call_records(self, call_hids: Iterable[str]) -> CallRecords:
        """The stored calls with these hids as raw rows (misses left out)."""
        return self._records(self.db.fetch_in("calls", call_rows_statement, rows.keys(call_hids)))

    def _dropping_calls(self, cursor: Any) -> list[Call]:
        """The calls ``dropping.drop_calls`` is about to delete."""
        found = self.db.fetch(self.db.statement("dropping_rows", dropping.calls_statement), cursor=cursor)
        edges = self.db.fetch(self.db.statement("dropping_call_edges", dropping.edges_statement), cursor=cursor)
        return dropping.dropped_calls(found, edges, self.vocabulary.version, self.vocabulary.name)

    def _records(self, found: list[tuple[Any, ...]], cursor: Any = None) -> CallRecords:
        """CallRecords from call rows (id first), with their edges."""
        if not found:
            return CallRecords([], [])
        version, name = self.vocabulary.version, self.vocabulary.name
        hids = {row[0]: row[1].hex() for row in found}
        records = [rows.call_record(row[1:], version) for row in found]
        edges = [(hids[call_id], "out" if output else "in", name(name_id), ref_hid.hex(), ref_cid.hex())
                 for call_id, output, name_id, ref_hid, ref_cid
                 in self.db.fetch_in("call_edges", call_edges_statement, hids, cursor=cursor)]
        return CallRecords(records, edges)

    def call_hids_of_ops(self, op_names: Iterable[str]) -> list[str]:
        """The hids of every stored call of these ops, all versions."""
        found = self.db.fetch_in("op_calls", op_call_hids_statement, [rows.text_bytes(n) for n in op_names])
        return [row[0].hex() for row in found]

    def edges_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Edge]:
        """Edges that read ("in") or produced ("out") these refs."""
        return [Edge(call_hid, direction, name, ref_hid)
                for call_hid, name, ref_hid in self.ref_edge_rows(ref_hids, direction)]

    def ref_edge_rows(self, ref_hids: Iterable[str], direction: str) -> list[tuple[str, str, str]]:
        """``edges_of_refs`` as raw ``(call hid, name, ref hid)`` rows."""
        name = self.vocabulary.name
        found = self.db.fetch_in("ref_edges", ref_edges_statement, rows.keys(ref_hids),
                                 {"output": direction == rows.DIRECTION_OUT})
        return [(call_hid.hex(), name(name_id), ref_hid.hex()) for call_hid, name_id, ref_hid in found]

    def ref_cids(self, ref_hids: Iterable[str]) -> dict[str, str]:
        """ref hid -> cid for the stored refs among ``ref_hids``."""
        found = self.db.fetch_in("ref_cids", ref_cids_statement, rows.keys(ref_hids))
        return {hid.hex(): cid.hex() for hid, cid in found}

    def calls_of_refs(self, ref_hids: Iterable[str], direction: str) -> list[Call]:
        """The calls that read ("in") or produced ("out") these refs, in one query."""
        keys = rows.keys(ref_hids)
        if len(keys) == 1:
            return self.calls_of_ref(keys[0].hex(), direction)
        found = self.db.fetch_in("calls_of_refs", calls_of_refs_statement, keys,
                                 {"output": direction == rows.DIRECTION_OUT})
        return calls_from_records(self._joined_records(found))

    def calls_of_ref(self, ref_hid: str, direction: str) -> list[Call]:
        """``calls_of_refs`` of one ref (what storage.get_ref_creator and get_consumers cost):
        one plain join, its few rows put in order and read in one pass (``rows.joined_calls``).
        The error texts of failed calls are read only when one is among them: the query is then
        asked again with them, and answers whole, so that every call comes from the same state
        of the store."""
        key = rows.bound_key(ref_hid)
        if key is None:
            return []
        output = direction == rows.DIRECTION_OUT
        version, name = self.vocabulary.version, self.vocabulary.name
        calls = rows.joined_calls(self.db.fetch(self._of_ref(output, False), (key,)), version, name)
        if calls is None:  # a failed call among them
            calls = rows.joined_calls(self.db.fetch(self._of_ref(output, True), (key,)), version, name, True) or []
        return calls

    def _of_ref(self, output: bool, errors: bool) -> Any:
        key, build = _CALLS_OF_REF[output, errors]
        return self.db.statement(key, build, _PARAMETERS, positional=True)

    def _joined_records(self, found: list[tuple[Any, ...]]) -> CallRecords:
        """CallRecords from rows of calls joined with their edges (``statements._calls_with_edges``)."""
        version, name = self.vocabulary.version, self.vocabulary.name
        records: dict[int, tuple[Any, ...]] = {}
        edges = []
        for row in found:
            if row[0] not in records:
                records[row[0]] = rows.call_record(row[1:11], version)
            if row[12] is not None:
                edges.append((records[row[0]][0], "out" if row[11] else "in", name(row[12]), row[13].hex(),
                              row[14].hex()))
        return CallRecords(list(records.values()), edges)

    def value_rows(self, cids: Iterable[str]) -> list[StoredValue]:
        """The rows of the stored values among ``cids``, in no particular order."""
        wanted = rows.keys(cids)
        if len(wanted) >= SCAN_MIN_IDS and len(wanted) >= SCAN_MIN_FRACTION * self.db.fetch(
                self.db.statement("value_count", lambda: select(func.count(schema.values.c.id))))[0][0]:
            # Most of the table: one scan costs a fraction of probing each id.
            keep = set(wanted)
            found = [row for row in self.db.fetch(self.db.statement("all_values", all_values_statement))
                     if row[0] in keep]
        else:
            found = self.db.fetch_in("values", values_statement, wanted)
        return [StoredValue(cid.hex(), format_name, data, size) for cid, format_name, data, size in found]

    def value_table(self, max_inline_bytes: int) -> ValueTable | None:
        """The values table whole, as a few long strings, or None when its inline bytes exceed
        ``max_inline_bytes``; read in one read-only transaction."""
        prepared = {name: self.db.statement("value_table_" + name, functools.partial(lambda s: s, statement))
                    for name, statement in value_table_statements(self.is_sqlite).items()}

        def read(cursor: Any) -> ValueTable | None:
            if int(self.db.fetch(prepared["inline_bytes"], cursor=cursor)[0][0]) > max_inline_bytes:
                return None
            cids, formats, sizes, lengths, data = self.db.fetch(prepared["table"], cursor=cursor)[0]
            return ValueTable(bytes(cids or b""), formats or "", sizes or "", lengths or "", bytes(data or b""))

        found: ValueTable | None = self.db.run(read, read_only=True)
        return found

    # --- reports ----------------------------------------------------------------------

    def op_version_rows(self, op_name: str) -> list[dict[str, Any]]:
        """One row per stored version of an op: version, calls, first/last use, source, dependencies."""
        found = self.db.fetch(self.db.statement("op_versions", op_versions_statement),
                              {"op": rows.text_bytes(op_name)})
        return [
            {"version": rows.text_of(version), "calls": calls, "first_used": first, "last_used": last,
             "source": source, "dependencies": dependencies}
            for version, calls, first, last, source, dependencies in found
        ]

    def op_version_names(self, op_name: str) -> set[str]:
        """The stored versions of an op (``op_version_rows`` without counting calls)."""
        found = self.db.fetch(self.db.statement("op_version_names", op_version_names_statement),
                              {"op": rows.text_bytes(op_name)})
        return {rows.text_of(version) or "" for version, in found}

    def compatible_version(self, op_name: str, version: str) -> str:
        """The version ``version`` was declared to compute the same as (``mark_compatible``), followed to
        the last, else itself. The declarations are rows of the settings table, one per declared version."""
        seen = {version}
        statement = self.db.statement("compatible_version", _setting_statement)
        while True:
            found = self.db.fetch(statement, {"key": _compatible_key(op_name, version)})
            if not found or found[0][0] in seen:
                return version
            version = found[0][0]
            seen.add(version)

    def note_compatible(self, op_name: str, version: str, same_as: str) -> None:
        """Record that ``version`` of the op computes what ``same_as`` does."""
        statement = self.db.insert(schema.meta, ["key"], ["key", "value"], update=["value"])
        row = {"key": _compatible_key(op_name, version), "value": same_as}
        self.db.run(lambda cursor: cursor.execute(statement.sql, statement.params(row)))

    def op_identities(self, op_names: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """op name -> (module, qualified name) of its function, for the stored ops among these."""
        o = schema.ops.c
        found = self.db.fetch_in("op_identities", lambda ids: select(o.name, o.module, o.qualname).where(
            o.name.in_(ids)), [rows.text_bytes(name) for name in op_names])
        return {rows.text_of(name) or "": (module, qualname) for name, module, qualname in found}

    def op_names(self) -> list[str]:
        """The names of every op with a stored version or call, sorted."""
        statement = self.db.statement("op_names", lambda: select(schema.ops.c.name))
        return sorted(rows.text_of(name) or "" for name, in self.db.fetch(statement))

    def call_count(self) -> int:
        """How many calls are stored."""
        statement = self.db.statement("call_count", lambda: select(func.count(schema.calls.c.id)))
        return int(self.db.fetch(statement)[0][0])

    def op_call_count(self, op_name: str) -> int:
        """How many calls of this op (all versions) are stored."""
        statement = self.db.statement("op_call_count", op_call_count_statement)
        return int(self.db.fetch(statement, {"op": rows.text_bytes(op_name)})[0][0])

    def snapshot(self) -> Snapshot:
        """The calls, edges and refs tables whole, as long strings (see ``statements``),
        read in one read-only transaction so that they agree."""
        prepared = self._snapshot_statements()

        def read(cursor: Any) -> dict[str, Any]:
            spans = self.db.fetch(prepared["spans"], cursor=cursor)[0]
            found: dict[str, Any] = {name: self.db.fetch(prepared[name], cursor=cursor)
                                     for name in ("versions", "names", "edges")}
            for position, table in enumerate(("calls", "refs")):
                found[table[:-1] + "_ids"], found[table] = self._snapshot_table(
                    prepared, table, spans[3 * position:3 * position + 3], cursor)
            return found

        found = self.db.run(read, read_only=True)
        self.vocabulary.learn_versions(found["versions"])
        self.vocabulary.learn_names(found["names"])
        version, name = self.vocabulary.version, self.vocabulary.name
        call_hids, call_versions, call_failed = found["calls"]
        edge_calls, edge_refs, edge_kinds = found["edges"][0]
        ref_hids, ref_cids = found["refs"]
        return Snapshot(
            [(version_id, *version(version_id)) for version_id, _, _ in found["versions"]],
            [(name_id, name(name_id)) for name_id, _ in found["names"]],
            found["call_ids"], bytes(call_hids or b""), call_versions or "", call_failed or "",
            edge_calls or "", edge_refs or "", edge_kinds or "",
            found["ref_ids"], bytes(ref_hids or b""), bytes(ref_cids or b""))

    def _snapshot_table(self, prepared: dict[str, Any], table: str, span: tuple[Any, ...],
                        cursor: Any) -> tuple[str | range, list[Any]]:
        """(ids, columns) of the calls or refs table. SQLite scans a table in id order, so where
        its ids run without gaps they are not read (a few rows are probed to check that the scan
        did not go by an index instead); PostgreSQL's tables have no order."""
        ids = _span_range(*span) if self.is_sqlite else None
        if ids is not None:
            columns = list(self.db.fetch(prepared[table], cursor=cursor)[0])
            if self._in_id_order(prepared[table + "_sample"], ids, bytes(columns[0] or b""), cursor):
                return ids, columns
        joined, *columns = self.db.fetch(prepared[table + "_and_ids"], cursor=cursor)[0]
        return joined or "", columns

    def _in_id_order(self, sample: Any, ids: range, hids: bytes, cursor: Any) -> bool:
        """Whether the rows at a few places of a snapshot's column of hids have the ids of a scan in
        id order."""
        if not ids:
            return True
        places = [i * (len(ids) - 1) // (SNAPSHOT_SAMPLES - 1) for i in range(SNAPSHOT_SAMPLES)]
        stored = dict(self.db.fetch(sample, {f"id_{i}": ids[p] for i, p in enumerate(places)}, cursor=cursor))
        return all(bytes(stored.get(ids[p]) or b"") == hids[16 * p:16 * p + 16] for p in places)

    def _snapshot_statements(self) -> dict[str, Any]:
        prepared = self.db.statement
        built = snapshot_statements(self.is_sqlite)
        return {name: prepared("snapshot_" + name, functools.partial(lambda s: s, statement))
                for name, statement in built.items()}

    def counts(self) -> dict[str, int]:
        """Numbers of ops, calls and values, and the bytes of stored values."""
        v = schema.values.c
        (ops, calls), = self.db.fetch(self.db.statement("count_calls", counts_statement))
        (values, size), = self.db.fetch(self.db.statement(
            "count_values", lambda: select(func.count(), func.coalesce(func.sum(v.size_bytes), 0))))
        return {"ops": ops, "calls": calls, "values": values, "bytes": int(size)}


def _span_range(low: int | None, high: int | None, count: int) -> range | None:
    """The ids of a table whose ``count`` ids run from ``low`` to ``high`` without gaps; None if
    they have gaps."""
    if not count:
        return range(0)
    return range(low, high + 1) if low is not None and high is not None and high - low + 1 == count else None


def _compatible_key(op_name: str, version: str) -> str:
    """The settings key of a version's ``mark_compatible`` declaration (keys hold 64 characters)."""
    return "compatible:" + tagged_digest(b"compatible", "\x1f".join((op_name, version)).encode()).hex()


def _setting_statement() -> Any:
    m = schema.meta.c
    return select(m.value).where(m.key == bindparam("key"))
