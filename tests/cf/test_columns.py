"""A frame's columns: ids as keys, and reading the store whole or by probes, with the same tables."""

from __future__ import annotations

import pickle
import sqlite3

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import Storage, op
from memostore.cf import columns
from memostore.cf.hidset import checked_keys, hex_strings, keys_of_hex
from memostore.errors import NotStoredError
from memostore.model import Call

from cf_pipeline import generate, grown_train, inc, run_loop, run_seed_like, summarize, train


@op
def fragile(x):
    if x % 3 == 0:
        raise ValueError(f"no multiples of 3: {x}")
    return x * 10


def fill(storage):
    run_seed_like(storage)
    grown_train()
    run_loop(storage, steps=6)
    with storage:
        a, b, _, _ = generate(7)
        summarize(inc(a), inc(b))
    storage.map(fragile, [{"x": x} for x in range(100, 106)], on_error="record", progress=False)


def tables(storage, snapshot: bool, monkeypatch) -> list:
    """Every table the tests compare, from a fresh frame, reading the store whole or not."""
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 0 if snapshot else 10**9)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_FRACTION", 0.0)
    found = []
    for source in (train, inc, fragile, summarize):
        frame = storage.cf(source).expand_all()
        table = frame.df(include_versions=True)
        calls = {c: [(x.hid, x.op, x.version, x.status, x.multi_output, x.started_at, x.duration_s,
                      x.error, {n: r.hid for n, r in x.inputs.items()}, list(x.outputs))
                     if x is not None else None for x in table[c]] for c in frame.ops}
        shown = table.drop(columns=list(frame.ops)).astype(object)
        found.append((repr(frame), shown.where(shown.notna(), None).to_dict("list"), calls))
    return found


def test_reading_the_store_whole_gives_the_same_tables_as_probing(storage, monkeypatch):
    fill(storage)
    probed = tables(storage, snapshot=False, monkeypatch=monkeypatch)
    whole = tables(storage, snapshot=True, monkeypatch=monkeypatch)
    assert whole == probed
    failed = [c for _, _, calls in whole for column in calls.values() for c in column if c and c[3] == "failed"]
    assert failed and all(c[7] is not None and "multiples of 3" in c[7].message for c in failed)


def test_a_large_request_reads_the_store_whole(storage, monkeypatch):
    fill(storage)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 2)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_FRACTION", 0.0)
    frame = storage.cf(inc)
    assert frame._index.complete
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 10**9)
    assert not storage.cf(inc)._index.complete


hex_ids = st.lists(st.binary(min_size=16, max_size=16).map(bytes.hex), max_size=50)


@given(hex_ids)
def test_keys_are_the_first_64_bits_and_hids_round_trip(hids):
    keys = keys_of_hex("".join(hids))
    assert keys.tolist() == [int(h[:16], 16) for h in hids]
    assert hex_strings(np.array(hids, dtype="S32")) == hids


def test_two_ids_sharing_their_first_64_bits_are_refused():
    first, second = "ab" * 8 + "00" * 8, "ab" * 8 + "11" * 8
    assert checked_keys(np.array([first, first], dtype="S32")).tolist() == [int("ab" * 8, 16)] * 2
    with pytest.raises(RuntimeError, match="first 64 bits"):
        checked_keys(np.array([first, second], dtype="S32"))


def test_a_store_with_gaps_in_its_ids_reads_the_same_tables_whole_as_by_probes(storage, monkeypatch):
    fill(storage)
    dropped = storage.cf(inc).df()["inc"].tolist()[:2]  # and their dependents: gaps in the calls and refs
    storage.drop_calls(dropped, delete_dependents=True)
    storage.cleanup_refs()
    snap = storage.reader.snapshot()
    assert not isinstance(snap.call_ids, range)
    assert tables(storage, snapshot=True, monkeypatch=monkeypatch) == \
        tables(storage, snapshot=False, monkeypatch=monkeypatch)


def test_a_snapshot_of_a_store_without_gaps_skips_its_id_columns(db_path):
    storage = Storage(db_path=db_path)  # SQLite numbers new rows without gaps
    fill(storage)
    snap = storage.reader.snapshot()
    assert snap.call_ids == range(1, storage.reader.call_count() + 1)
    assert isinstance(snap.ref_ids, range) and len(snap.ref_hids) == 16 * len(snap.ref_ids)


def test_a_snapshot_that_sqlite_reads_by_an_index_reads_the_ids_too(db_path, monkeypatch):
    storage = Storage(db_path=db_path)
    fill(storage)
    expected = tables(storage, snapshot=False, monkeypatch=monkeypatch)
    storage.close()
    with sqlite3.connect(db_path) as connection:  # a covering index: a scan in hid order, not id order
        connection.execute("CREATE INDEX by_hid ON memostore_calls (hid, op_version_id, status)")
        plan = connection.execute("EXPLAIN QUERY PLAN SELECT group_concat(hid), group_concat(op_version_id), "
                                  "group_concat(status) FROM memostore_calls").fetchall()
    assert "by_hid" in str(plan)
    storage = Storage(db_path=db_path)
    assert not isinstance(storage.reader.snapshot().call_ids, range)
    assert tables(storage, snapshot=True, monkeypatch=monkeypatch) == expected


class EdgesOfANewCall:
    """A reader whose snapshot also holds the edges of a call stored after its calls were read."""

    def __init__(self, reader):
        self._reader = reader

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def snapshot(self):
        snap = self._reader.snapshot()
        self.edges = len(snap.edge_kinds.split(","))
        ref = snap.ref_ids[0] if isinstance(snap.ref_ids, range) else snap.ref_ids.split(",")[0]
        newcomer, input_kind = 10**9, snap.names[0][0] * 2
        return snap._replace(edge_calls=f"{snap.edge_calls},{newcomer}", edge_refs=f"{snap.edge_refs},{ref}",
                             edge_kinds=f"{snap.edge_kinds},{input_kind}")


def test_a_snapshot_keeps_only_the_edges_of_the_calls_it_read(storage, monkeypatch):
    fill(storage)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 0)
    monkeypatch.setattr(columns, "SNAPSHOT_MIN_FRACTION", 0.0)
    reader = EdgesOfANewCall(storage.reader)
    index = columns.CallIndex(reader)
    stored = storage.reader.call_hids_of_ops(["inc"])
    keys = index.fetch(stored)
    assert index.complete and keys.size == len(stored) > 0
    assert index.e_call.size == reader.edges
    assert set(index.e_call.tolist()) <= set(index.c_key.tolist())


@op
def scale(x, factor=2):
    return x * factor, x + factor


def test_table_calls_are_read_when_used_and_match_the_stored_calls(storage, monkeypatch):
    monkeypatch.setattr(columns, "CALL_BATCH", 3)  # several batches in one column
    with storage:
        for x in range(10):
            scale(x)
    table = storage.cf(scale).df()
    shown = list(table["scale"])
    assert all(isinstance(c, columns.StoredCall) for c in shown)
    for call in shown:
        (x_ref, out_ref) = call.inputs["x"], call.outputs["output_0"]
        stored = storage.get_ref_creator(out_ref)
        assert (call.op, call.version, call.hid, call.cid, call.status) == \
            (stored.op, stored.version, stored.hid, stored.cid, stored.status)
        assert (call.started_at, call.duration_s, call.multi_output) == \
            (stored.started_at, stored.duration_s, stored.multi_output) and call.multi_output
        assert list(call.outputs) == ["output_0", "output_1"] and storage.unwrap(x_ref) * 2 == storage.unwrap(out_ref)
        assert [r.hid for r in call.result()] == [r.hid for r in stored.result()]
    # Equal to the stored Call, and pickled as a plain Call with every field.
    again = pickle.loads(pickle.dumps(shown[0]))
    assert type(again) is Call and again == shown[0] and again.outputs.keys() == shown[0].outputs.keys()
    assert again.duration_s == shown[0].duration_s


def test_a_table_call_deleted_from_the_store_says_so(storage):
    with storage:
        for x in range(3):
            scale(x)
    table = storage.cf(scale).df(include_versions=True)
    first = table["scale"].iloc[0]
    storage.drop_calls(list(table["scale"]))
    # What a table shows of its Calls is known without the store: showing it reads nothing.
    assert (first.op, first.version, first.status) == ("scale", table["scale.version"].iloc[0], "ok")
    assert repr(first) == f"Call(scale, hid={first.hid[:3]}...)" and "Call(scale" in table.to_string()
    with pytest.raises(NotStoredError, match=f"call {first.hid} was deleted"):
        _ = first.outputs


@op(output_names=["plain", "a\x1fb"])
def separated(**kwargs):
    return sorted(kwargs), len(kwargs)


def test_names_holding_the_snapshot_separator_read_the_same_whole_or_probed(storage, monkeypatch):
    fill(storage)
    with storage:
        for n in range(3):
            separated(**{"k\x1fw": n, "other": 1})
    found = []
    for snapshot in (False, True):
        monkeypatch.setattr(columns, "SNAPSHOT_MIN_IDS", 0 if snapshot else 10**9)
        monkeypatch.setattr(columns, "SNAPSHOT_MIN_FRACTION", 0.0)
        frame = storage.cf(separated).expand_all()
        found.append(frame.df(values="refs").map(lambda r: getattr(r, "hid", r)).to_dict("list"))
        assert sorted(frame.df()["k\x1fw"]) == [0, 1, 2] and set(frame.df()["a\x1fb"]) == {2}
    assert found[0] == found[1]
