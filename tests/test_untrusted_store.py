"""A store from someone else is inert: no file outside it is touched, no decoder runs wild.

With ``allow_pickle=False`` every load gives the stored value or a
``CorruptValueError``/``UntrustedValueError``, whatever the bytes.
"""

from __future__ import annotations

import marshal
import random
import sqlite3
import struct

import numpy as np
import pandas as pd
import pytest

from memostore import CorruptValueError, NotStoredError, Storage, UntrustedValueError, content_id, op
from memostore.serialization import dumps, loads


@op
def make_array(n):
    return np.arange(n, dtype=np.float64)


def key(cid):
    """A cid as the database holds it: 16 bytes (any other text, as its bytes: a tampered id)."""
    if isinstance(cid, str):
        return bytes.fromhex(cid) if len(cid) == 32 else cid.encode()
    return cid


def execute(db_path, sql, params=()):
    with sqlite3.connect(db_path) as connection:
        keys = [key(p) if isinstance(p, str) and len(p) == 32 else p for p in params]
        return connection.execute(sql, keys).fetchall()


def retarget_value(db_path, old_cid, new_cid):
    for table, column in (("memostore_values", "cid"), ("memostore_refs", "cid")):
        execute(db_path, f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (key(new_cid), key(old_cid)))


def test_a_tampered_cid_never_reads_or_deletes_a_file_outside_the_store(tmp_path):
    db_path = tmp_path / "a" / "b" / "runs.db"
    db_path.parent.mkdir(parents=True)
    with Storage(db_path=db_path, blob_threshold_bytes=100) as storage:
        ref = make_array(1000)
        call = storage.get_ref_creator(ref)
    secret = tmp_path / "x"  # where <blobs>/../../x points: outside the store
    secret.write_bytes(b"not yours")
    retarget_value(db_path, ref.cid, "../../x")
    untrusting = Storage(db_path=db_path, blob_threshold_bytes=100, allow_pickle=False)
    tampered = untrusting.load_ref(ref.hid)
    # Ids are stored as 16 bytes: a tampered one names no value (and never a path).
    with pytest.raises((CorruptValueError, NotStoredError)):
        untrusting.unwrap(tampered)
    assert not untrusting.check().ok
    untrusting.drop_calls([call.hid])
    untrusting.cleanup_refs()
    assert secret.read_bytes() == b"not yours"


def test_a_blob_folder_that_is_a_link_is_not_followed(tmp_path, db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100) as storage:
        ref = make_array(1000)
    folder = db_path.parent / "runs.db-blobs" / ref.cid[:2]
    elsewhere = tmp_path / "elsewhere"
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / ref.cid).write_bytes(b"planted")
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100, allow_pickle=False)
    with pytest.raises(CorruptValueError, match="symbolic link"):
        fresh.reader.load_values([ref.cid])
    # Recomputed here instead, and not written through the link either.
    np.testing.assert_array_equal(fresh.unwrap(fresh.load_ref(ref.hid)), np.arange(1000))
    assert (elsewhere / ref.cid).read_bytes() == b"planted"
    fresh.drop_calls([storage.get_ref_creator(ref)])
    fresh.cleanup_refs()
    assert (elsewhere / ref.cid).exists()


def test_a_five_byte_value_asking_for_a_huge_tuple_raises_at_once(db_path):
    with Storage(db_path=db_path) as storage:
        ref = make_array(3)
    bomb = b"(" + struct.pack("<i", 2**31 - 1)  # marshal.loads would allocate 16 GiB
    execute(db_path, "UPDATE memostore_values SET format = 'marshal', inline_data = ?, size_bytes = 5 WHERE cid = ?",
            (bomb, ref.cid))
    fresh = Storage(db_path=db_path, allow_pickle=False)
    with pytest.raises(CorruptValueError, match="tuple of 2147483647 items"):
        fresh.reader.load_values([ref.cid])
    assert storage.check().damaged.keys() == {ref.cid}


def samples():
    """(format, bytes, value) for every format a store may hold, including earlier releases' marshal."""
    plain = {"a": [1, 2.5, None, (True, "x" * 40)], 7: {b"bytes", frozenset({2**70})}, "c": 1j}
    values = [plain, np.arange(12, dtype=np.int32).reshape(3, 4), np.float32(2.5),
              pd.DataFrame({"s": ["a", None, float("nan")], "x": [1.5, 2.5, 3.5]},
                           index=pd.date_range("2024-01-01", periods=3, freq="D")),
              {"opaque": object}]
    found = []
    for value in values:
        format_name, data = dumps(value)
        found.append((format_name, data.tobytes() if hasattr(data, "tobytes") else data, value))
    found.append(("marshal", marshal.dumps(plain), plain))  # version 4, with back-references
    return found


def mutations(data, rng, count):
    for _ in range(count):
        damaged = bytearray(data)
        kind = rng.randrange(5)
        position = rng.randrange(len(damaged))
        if kind == 0:
            damaged[position] ^= 1 << rng.randrange(8)
        elif kind == 1:
            damaged[position] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif kind == 2:
            del damaged[position:]
        elif kind == 3:
            damaged[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        else:
            damaged[position:position + 4] = struct.pack("<i", rng.choice([-1, 2**31 - 1, 2**20, len(data)]))
        yield bytes(damaged)


@pytest.mark.parametrize("format_name, data, value", samples(), ids=lambda x: x if isinstance(x, str) else "")
def test_mutated_payloads_decode_or_raise_a_memostore_error(format_name, data, value):
    rng = random.Random(format_name + str(len(data)))
    for damaged in mutations(data, rng, 400):
        try:
            loads(format_name, damaged, allow_pickle=False)
        except (CorruptValueError, UntrustedValueError):
            pass


def test_mutated_values_in_a_store_load_as_themselves_or_raise(db_path):
    """Through a real store: a load gives the stored value (checked by content id) or an error."""
    with Storage(db_path=db_path):
        pass
    rng = random.Random(7)
    untrusting = Storage(db_path=db_path, allow_pickle=False)
    served = 0
    for format_name, data, value in samples():
        cid = content_id(value)
        for damaged in [data, *mutations(data, rng, 150)]:
            execute(db_path, "DELETE FROM memostore_values WHERE cid = ?", (cid,))
            execute(db_path, "INSERT INTO memostore_values (cid, format, size_bytes, inline_data) VALUES (?, ?, ?, ?)",
                    (cid, format_name, len(damaged), damaged))
            try:
                loaded = untrusting._buffer.load_values([cid])[cid]
            except (CorruptValueError, UntrustedValueError):
                continue
            assert content_id(loaded) == cid
            served += 1
    assert served >= 5  # at least every undamaged non-pickle sample
