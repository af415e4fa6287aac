"""Names and texts of any character survive the store: ops, versions, arguments, outputs, errors."""

from __future__ import annotations

import pytest

from memostore import op
from memostore.backends.base import StoredValue, WriteBatch
from memostore.backends.rows import key, keys, text_bytes, text_of
from memostore.model import Call, CallError, Ref

ODD = "a\x1fb\x00c\ud800 ü"  # a separator, a NUL, a lone surrogate, non-ASCII


def test_hex_ids_become_16_byte_keys_and_non_ids_match_nothing():
    assert key("ab" * 16) == bytes.fromhex("ab" * 16)
    assert key("unknown-hid") is None and key("ab") is None
    assert sorted(keys(["ab" * 16, "ab" * 16, "zz"])) == [bytes.fromhex("ab" * 16)]


def test_texts_round_trip_through_bytes():
    assert text_of(text_bytes(ODD)) == ODD
    assert text_of(None) is None


def test_a_frame_over_many_calls_keeps_names_with_any_character(storage):
    @op(output_names=["out\x1fput"])
    def spread(x, **options):
        return x + len(options)

    with storage:
        for i in range(1_100):
            spread(i, **{"key\x1fone": 1, "ünï": 2})
    table = storage.cf(spread).df()  # over 1,000 calls: the frame reads the whole store
    assert len(table) == 1_100
    assert {"out\x1fput", "key\x1fone", "ünï"} <= set(table.columns)
    assert sorted(table["out\x1fput"])[:2] == [2, 3]


def test_nul_and_long_names_and_messages_commit_and_read_back(storage):
    name = "op_" + "x" * 300 + "\x00"
    cid, hid, call_hid = "ab" * 16, "cd" * 16, "ef" * 16
    error = CallError("Value\x00Error", "bad \x00 input " + ODD, "Traceback\x00")
    call = Call(name, ODD, call_hid, "01" * 16, {ODD: Ref(cid, hid)}, {}, status="failed", error=error)
    store = storage._store
    store.write(WriteBatch([StoredValue(cid, "marshal", b"x", 1)], {hid: cid}, [call],
                           [{"op": name, "version": ODD, "source": None, "dependencies": None,
                             "first_used": 1.0, "last_used": 2.0, "module": "pkg.mod", "qualname": "Outer.f"}]))
    [stored] = store.calls_by_hids([call_hid])
    assert (stored.op, stored.version, stored.error, list(stored.inputs)) == (name, ODD, error, [ODD])
    assert store.op_version_rows(name)[0]["version"] == ODD
    assert store.op_version_names(name) == {ODD} and store.op_version_names("absent") == set()
    assert store.op_identities([name, "absent"]) == {name: ("pkg.mod", "Outer.f")}
    assert store.call_hids_of_ops([name]) == [call_hid]


@pytest.mark.parametrize("module", [None, "later.module"])
def test_an_op_identity_is_kept_once_given(module):
    from memostore.backends.sql import SqlMetadataStore

    store = SqlMetadataStore("sqlite://")
    row = {"op": "f", "version": "1", "source": None, "dependencies": None, "first_used": 1.0, "last_used": 1.0}
    store.write(WriteBatch(op_versions=[{**row, "module": "first.module", "qualname": "f"}]))
    store.write(WriteBatch(op_versions=[row if module is None else {**row, "module": module, "qualname": "g"}]))
    expected = ("first.module", "f") if module is None else (module, "g")
    assert store.op_identities(["f"]) == {"f": expected}
