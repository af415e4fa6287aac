"""The SQL metadata store: schema, batching, transactions, compatibility."""

from __future__ import annotations

import sqlite3

import pytest

from memostore import SchemaVersionError, Storage, op
from memostore.backends.base import StoredValue, WriteBatch
from memostore.backends.sql import SqlMetadataStore
from memostore.model import Call, CallError, Ref


def one_call_batch(index: int) -> WriteBatch:
    call_hid, ref_hid, cid = f"{index:032x}", f"a{index:031x}", f"b{index:031x}"
    call = Call("f", "1", call_hid, "c" + call_hid[1:], {}, {"output_0": Ref(cid, ref_hid)})
    return WriteBatch(values=[StoredValue(cid, "marshal", b"x", 1)], refs={ref_hid: cid}, calls=[call])


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """A metadata store on each supported database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'a.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    metadata_store = SqlMetadataStore(url)
    yield metadata_store
    metadata_store.close()


def test_writes_are_idempotent(store):
    store.write(one_call_batch(1))
    store.write(one_call_batch(1))
    assert store.counts() == {"ops": 1, "calls": 1, "values": 1, "bytes": 1}
    found = store.find_outputs(f"{1:032x}", "none")
    assert found.outputs == [("output_0", f"a{1:031x}", f"b{1:031x}")]


def test_edges_of_a_flush_join_new_and_stored_calls_and_refs(store):
    """A flush's edges point at the right rows whether its calls and refs are new or stored before."""
    store.write(one_call_batch(4))
    stored_call, stored_ref = f"{4:032x}", f"a{4:031x}"
    consumer = Call("g", "1", f"{5:032x}", f"c{5:031x}", {"x": Ref(f"b{4:031x}", stored_ref)},
                    {"output_0": Ref(f"b{5:031x}", f"a{5:031x}")})
    again = one_call_batch(4)
    store.write(WriteBatch(values=[StoredValue(f"b{5:031x}", "marshal", b"y", 1), *again.values],
                           refs={stored_ref: f"b{4:031x}", f"a{5:031x}": f"b{5:031x}"},
                           calls=[again.calls[0], consumer]))
    assert [call.hid for call in store.calls_of_refs([stored_ref], "out")] == [stored_call]
    [reader] = store.calls_of_refs([stored_ref], "in")
    assert reader.hid == consumer.hid and reader.inputs["x"].hid == stored_ref
    assert [call.hid for call in store.calls_of_refs([f"a{5:031x}"], "out")] == [consumer.hid]
    assert store.counts()["calls"] == 2


def test_edges_of_a_flush_of_new_calls_point_at_their_own_calls_and_refs(store):
    """New calls and refs, given out of key order, each keep their own inputs and outputs; so does a
    failed call written again as ok (a retry replaces its row: not a new one)."""
    store.write(one_call_batch(1))
    calls = [Call("g", "1", f"{9 - i:032x}", f"d{i:031x}", {"x": Ref(f"b{i:031x}", f"e{9 - i:031x}")},
                  {"output_0": Ref(f"b{i + 1:031x}", f"f{i:031x}")}) for i in range(1, 4)]
    failed = Call("g", "1", f"{20:032x}", f"d{20:031x}", {"x": Ref(f"b{1:031x}", f"a{1:031x}")}, {},
                  status="failed", error=CallError("ValueError", "bad", "Traceback"))
    values = [StoredValue(f"b{i:031x}", "marshal", b"x", 1) for i in range(1, 5)]
    refs = {ref.hid: ref.cid for call in calls for ref in (*call.inputs.values(), *call.outputs.values())}
    store.write(WriteBatch(values=values, refs=refs, calls=[*calls, failed]))
    retried = Call("g", "1", failed.hid, failed.cid, failed.inputs, {"output_0": Ref(f"b{4:031x}", f"f{20:031x}")})
    store.write(WriteBatch(values=values, refs={f"f{20:031x}": f"b{4:031x}"}, calls=[retried]))
    for call in [*calls, retried]:
        [stored] = store.calls_by_hids([call.hid])
        assert stored.status == "ok" and stored.error is None
        assert {name: (ref.hid, ref.cid) for name, ref in stored.inputs.items()} == \
            {name: (ref.hid, ref.cid) for name, ref in call.inputs.items()}
        assert {name: (ref.hid, ref.cid) for name, ref in stored.outputs.items()} == \
            {name: (ref.hid, ref.cid) for name, ref in call.outputs.items()}
    assert store.counts()["calls"] == 5


def test_lookup_falls_back_to_content_id(store):
    store.write(one_call_batch(2))
    found = store.find_outputs("unknown-hid", "c" + f"{2:032x}"[1:])
    assert found is not None and found.call_hid == f"{2:032x}"
    assert store.find_outputs("unknown-hid", "unknown-cid") is None


def test_file_stores_use_wal(tmp_path):
    path = tmp_path / "wal.db"
    SqlMetadataStore(f"sqlite:///{path}")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_commit_of_many_calls_is_a_handful_of_statements(db_path):
    storage = Storage(db_path=db_path)

    @op
    def inc(x):
        return x + 1

    statements: list[str] = []
    with storage:
        for i in range(500):
            inc(i)
        connection = storage._store._connection()
        connection.set_trace_callback(statements.append)
    connection.set_trace_callback(None)
    writes = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    # The trace shows each row of an executemany; count the distinct statements.
    # values, refs, calls, edges, op versions (noted and not), and a new op's and names' rows
    assert len({s.split(" VALUES")[0] for s in writes}) <= 8
    # Only ids are read back: of the new op, version and names, and of the calls and refs
    # the edges point at (the largest ids before, then one range scan per table), nothing
    # per call; plus the flush's check that the values its calls name are stored (batched).
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 3 + 1 + 2 + 2
    assert statements[0].startswith("BEGIN") and statements[-1] == "COMMIT"
    assert "calls=500" in repr(storage)


def test_reads_are_chunked_for_many_ids(store):
    batch = WriteBatch()
    for i in range(1200):
        one = one_call_batch(i)
        batch.values += one.values
        batch.refs.update(one.refs)
        batch.calls += one.calls
    store.write(batch)
    hids = [f"{i:032x}" for i in range(1200)]
    calls = store.calls_by_hids(hids + ["missing"])
    assert len(calls) == 1200
    assert all(list(c.outputs) == ["output_0"] for c in calls)
    assert len(store.call_hids_of_ops(["f", "g"])) == 1200


def test_a_store_from_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "future.db"
    SqlMetadataStore(f"sqlite:///{path}").write(one_call_batch(1))
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE memostore_meta SET value = '99' WHERE key = 'schema_version'")
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="schema version 99.*upgrade memostore"):
        Storage(db_path=path)
    assert path.read_bytes() == before


def test_a_newer_postgres_store_is_refused(postgres_url):
    import psycopg

    SqlMetadataStore(postgres_url).write(one_call_batch(1))
    schema = postgres_url.rsplit("%3D", 1)[1]
    plain = postgres_url.split("?")[0].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'UPDATE "{schema}".memostore_meta SET value = %s WHERE key = %s', ("99", "schema_version"))
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        Storage(db_url=postgres_url)


def test_a_store_hashed_by_a_newer_format_is_refused_and_an_older_one_read(tmp_path):
    path = tmp_path / "hash.db"
    SqlMetadataStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE memostore_meta SET value = '99' WHERE key = 'hash_format'")
    with pytest.raises(SchemaVersionError, match="hashed with format 99.*upgrade memostore"):
        Storage(db_path=path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE memostore_meta SET value = '1' WHERE key = 'hash_format'")
    assert "calls=0" in repr(Storage(db_path=path))  # what the first release wrote opens


def test_only_sqlite_and_postgresql_are_supported():
    from memostore import StorageError

    with pytest.raises(StorageError, match="unsupported database 'mysql'"):
        SqlMetadataStore("mysql://user@localhost/db")


def test_a_failed_write_rolls_back_everything(store):
    broken = one_call_batch(3)
    broken.refs.clear()  # its output edge names a ref that is not stored: NOT NULL after values and calls went in
    with pytest.raises(Exception, match="(?i)not null|null value"):
        store.write(broken)
    assert store.counts()["calls"] == 0 and store.counts()["values"] == 0
