"""Every loaded value is checked against its content id; storage.check verifies a whole store."""

from __future__ import annotations

import gc
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memostore import CheckReport, CorruptValueError, File, MemostoreError, Storage, op

RUNS: list[str] = []


@op
def words(n):
    RUNS.append("words")
    return [f"word{i}" for i in range(n)]


@op
def floats(n):
    RUNS.append("floats")
    return np.arange(n, dtype=np.float64)


@op
def total(values):
    RUNS.append("total")
    return float(np.sum(values))


def execute(db_path, sql, params=()):
    """``sql`` on the store's file; hex ids given are passed as the 16-byte keys the tables hold."""
    with sqlite3.connect(db_path) as connection:
        keys = [bytes.fromhex(p) if isinstance(p, str) and len(p) == 32 else p for p in params]
        return connection.execute(sql, keys).fetchall()


def flip_inline_byte(db_path, cid, position=-2):
    [(data,)] = execute(db_path, "SELECT inline_data FROM memostore_values WHERE cid = ?", (cid,))
    damaged = bytearray(data)
    damaged[position] ^= 0x01
    execute(db_path, "UPDATE memostore_values SET inline_data = ? WHERE cid = ?", (bytes(damaged), cid))


def blob_path(db_path, cid):
    return db_path.parent / "runs.db-blobs" / cid[:2] / cid


def test_a_hit_on_a_damaged_value_recomputes_it_and_repairs_the_store(db_path, caplog):
    with Storage(db_path=db_path) as storage:
        ref = words(3)
    flip_inline_byte(db_path, ref.cid)
    RUNS.clear()
    fresh = Storage(db_path=db_path)
    with fresh:
        lazy = words(3)  # a hit: the damage shows only when the value loads
    assert RUNS == []
    assert fresh.unwrap(lazy) == ["word0", "word1", "word2"]
    assert RUNS == ["words"] and "recomputed it with op 'words'" in caplog.text
    with Storage(db_path=db_path) as again:
        assert again.unwrap(words(3)) == ["word0", "word1", "word2"]
    assert RUNS == ["words"]  # stored right this time: loaded, not recomputed
    assert storage.check().ok


STAMPS = []


@op
def stamped(n):
    STAMPS.append(n)
    return [n, len(STAMPS)]  # another value each time it runs


def test_a_damaged_value_that_recomputes_differently_raises_naming_the_value_and_its_call(db_path):
    with Storage(db_path=db_path) as storage:
        ref = stamped(3)
        call = storage.get_ref_creator(ref)
    flip_inline_byte(db_path, ref.cid)
    fresh = Storage(db_path=db_path)
    with fresh:
        lazy = stamped(3)
    expected = (rf"{ref.cid} is damaged.*stamped \(call {call.hid}\).*drop_calls.*memostore check DB --repair"
                r".*not recomputed.*another content id")
    with pytest.raises(CorruptValueError, match=expected) as info:
        fresh.unwrap(lazy)
    assert info.value.cid == ref.cid and info.value.call_hids == (call.hid,)


def test_a_damaged_value_of_an_op_not_defined_here_raises(db_path):
    with Storage(db_path=db_path) as storage:
        ref = words(3)
    flip_inline_byte(db_path, ref.cid)
    script = ("import sys\nfrom memostore import CorruptValueError, Storage\n"
              f"storage = Storage(db_path={str(db_path)!r})\n"
              "try:\n"
              f"    storage.load_ref({ref.hid!r}, in_memory=True)\n"
              "except CorruptValueError as err:\n"
              "    print(err)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert ref.cid in done.stdout and "op 'words' is not defined in this process" in done.stdout
    assert not storage.check().ok


def test_a_damaged_value_is_never_returned_by_a_load_that_does_not_recompute(db_path):
    with Storage(db_path=db_path) as storage:
        ref = words(3)
    flip_inline_byte(db_path, ref.cid)
    with pytest.raises(CorruptValueError, match=ref.cid):
        Storage(db_path=db_path).reader.load_values([ref.cid])  # what frames load through
    assert ref.cid in storage.check().damaged


def test_damaged_inputs_of_a_damaged_value_are_recomputed_first(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100):
        array_ref = floats(1000)
        total_ref = total(array_ref)
    blob_path(db_path, array_ref.cid).write_bytes(b"x" * 10)
    execute(db_path, "DELETE FROM memostore_values WHERE cid = ?", (total_ref.cid,))
    op(lambda values: 0.0, name="total")  # a later op of that name, gone already: the one that is alive is used
    gc.collect()
    RUNS.clear()
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100)
    with fresh:
        lazy = total(floats(1000))
    assert fresh.unwrap(lazy) == sum(range(1000))
    assert RUNS == ["floats", "total"]
    assert fresh.check().ok


@op
def joined(first, *parts, sep="-", **labels):
    RUNS.append("joined")
    return sep.join([first, *parts, *(f"{k}={v}" for k, v in sorted(labels.items()))])


def test_a_damaged_value_of_a_call_with_args_and_kwargs_recomputes_from_its_stored_arguments(db_path):
    with Storage(db_path=db_path):
        ref = joined("a", "b", "c", sep="+", args_0="x", colour="red")
    expected = "a+b+c+args_0=x+colour=red"
    flip_inline_byte(db_path, ref.cid)
    fresh = Storage(db_path=db_path)
    with fresh:
        lazy = joined("a", "b", "c", sep="+", args_0="x", colour="red")
    assert fresh.unwrap(lazy) == expected and fresh.check().ok


def test_a_blob_of_the_right_size_with_other_content_is_not_returned(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100) as storage:
        ref = floats(1000)
    path = blob_path(db_path, ref.cid)
    data = bytearray(path.read_bytes())
    data[-8:] = np.float64(-1.0).tobytes()
    path.write_bytes(bytes(data))
    assert not storage.check().ok
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100)
    with fresh:
        lazy = floats(1000)
    assert fresh.unwrap(lazy)[-1] == 999.0  # recomputed, and the file written again
    assert storage.check().ok


def test_a_cut_short_blob_is_recomputed_and_written_again(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100):
        ref = floats(1000)
    path = blob_path(db_path, ref.cid)
    path.write_bytes(path.read_bytes()[:-800])  # cut short, as by a crash
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100)
    with fresh:
        assert fresh.unwrap(floats(1000))[-1] == 999.0
    with Storage(db_path=db_path, blob_threshold_bytes=100) as reader:
        assert reader.unwrap(floats(1000))[-1] == 999.0
    assert reader.check().ok


def test_drop_and_rerun_rewrites_a_damaged_blob(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100):
        ref = floats(1000)
    path = blob_path(db_path, ref.cid)
    path.write_bytes(path.read_bytes()[:-800])
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100)
    fresh.drop_calls([fresh.get_ref_creator(ref)])
    again = Storage(db_path=db_path, blob_threshold_bytes=100)
    with again:
        assert again.unwrap(floats(1000))[-1] == 999.0
    assert again.check().ok


def damage_value_row(url, cid):
    """Flip a byte of a value row's inline bytes, in a SQLite or a PostgreSQL store."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    key = bytes.fromhex(cid)
    with engine.begin() as connection:
        data = connection.execute(sqlalchemy.text("SELECT inline_data FROM memostore_values WHERE cid = :c"),
                                  {"c": key}).scalar_one()
        damaged = bytes(data[:-2]) + bytes([data[-2] ^ 1]) + bytes(data[-1:])
        connection.execute(sqlalchemy.text("UPDATE memostore_values SET inline_data = :d WHERE cid = :c"),
                           {"d": damaged, "c": key})
    engine.dispose()


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_writing_a_value_replaces_a_damaged_row_without_a_cleanup(kind, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    options = {"db_url": url} if url else {"db_path": tmp_path / "runs.db"}
    with Storage(**options) as storage:
        ref = words(4)
    damage_value_row(storage.config.url, ref.cid)
    assert ref.cid in storage.check().damaged
    fresh = Storage(**options)
    fresh.drop_calls([fresh.get_ref_creator(ref)])  # no cleanup_refs: the damaged row stays until written again
    RUNS.clear()
    with Storage(**options) as again:
        assert again.unwrap(words(4)) == ["word0", "word1", "word2", "word3"]
    assert RUNS == ["words"] and again.check().ok
    with Storage(**options) as reader:
        assert reader.unwrap(words(4))[-1] == "word3"
    assert RUNS == ["words"]


def test_check_reports_a_healthy_store(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100) as storage:
        total(floats(1000))
        words(5)
    report = storage.check()
    assert isinstance(report, CheckReport) and report.ok
    assert report.values_checked == 5 and report.bytes_checked > 8000
    assert (report.damaged, report.dangling_edges, report.orphan_files) == ({}, 0, [])


def test_check_finds_damage_and_repair_makes_the_calls_recompute(db_path):
    with Storage(db_path=db_path, blob_threshold_bytes=100) as storage:
        array_ref = floats(1000)
        total(array_ref)
        word_ref = words(4)
    flip_inline_byte(db_path, word_ref.cid)
    blob_path(db_path, array_ref.cid).write_bytes(b"x" * 10)
    orphan = blob_path(db_path, "ab" * 16)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"nobody's")
    report = storage.check()
    assert not report.ok
    assert set(report.damaged) == {word_ref.cid, array_ref.cid}
    assert report.orphan_files == ["ab" * 16]
    assert storage.check().dropped_calls == []  # without repair nothing changes

    repaired = storage.check(repair=True)
    assert len(repaired.dropped_calls) == 3  # floats, total downstream of it, words
    RUNS.clear()
    with Storage(db_path=db_path, blob_threshold_bytes=100) as fresh:
        assert fresh.unwrap(total(floats(1000))) == sum(range(1000))
        assert fresh.unwrap(words(4))[-1] == "word3"
    assert sorted(RUNS) == ["floats", "total", "words"]
    assert fresh.check().ok


def test_check_counts_edges_to_values_that_are_not_stored(db_path):
    with Storage(db_path=db_path) as storage:
        ref = words(2)
    execute(db_path, "DELETE FROM memostore_values WHERE cid = ?", (ref.cid,))
    report = storage.check()
    assert report.dangling_edges == 1 and ref.cid in report.damaged
    storage.check(repair=True)
    assert storage.check().ok


def test_check_runs_sqlites_integrity_check(db_path):
    with Storage(db_path=db_path) as storage:
        words(2)
    assert storage.check().database_problems == []


def test_random_damage_to_the_database_never_returns_a_wrong_value(db_path):
    """64 random bytes written into a page of values (near the end of the file: the small tables
    of names and ops, which every load reads, come first): each load is right or an error."""
    with Storage(db_path=db_path) as storage:
        expected = {n: storage.unwrap(words(n)) for n in range(40)}
        storage.close()
    size = db_path.stat().st_size
    rng = random.Random(0)
    with open(db_path, "r+b") as handle:
        handle.seek(size - 2 * 4096 + 2048)
        handle.write(bytes(rng.randrange(256) for _ in range(64)))
    served = 0
    for n, value in expected.items():
        try:
            with Storage(db_path=db_path) as fresh:
                got = fresh.unwrap(words(n))
        except (MemostoreError, sqlite3.DatabaseError):
            continue  # a raw sqlite3 error for a broken page is another issue's to wrap
        assert got == value
        served += 1
    assert served > 0


class Model:
    """Pickled, like most fitted models: its bytes need not survive a round trip."""

    def __init__(self, weights):
        self.weights = weights


@op
def fit(n):
    return Model([float(i) for i in range(n)])


def test_a_damaged_byte_in_a_pickle_is_caught_by_its_checksum(db_path):
    with Storage(db_path=db_path) as storage:
        ref = fit(50)
    [(data,)] = execute(db_path, "SELECT inline_data FROM memostore_values WHERE cid = ?", (ref.cid,))
    flip_inline_byte(db_path, ref.cid, position=len(data) // 2)
    with Storage(db_path=db_path) as fresh:
        lazy = fit(50)
    with pytest.raises(CorruptValueError, match="checksum"):
        fresh.reader.load_values([lazy.cid])
    assert ref.cid in storage.check().damaged
    assert fresh.unwrap(lazy).weights[-1] == 49.0  # recomputed: a pickle's content id is the same here
    assert storage.check().ok


def test_pickles_written_before_checksums_still_load(db_path):
    with Storage(db_path=db_path):
        ref = fit(50)
    [(data,)] = execute(db_path, "SELECT inline_data FROM memostore_values WHERE cid = ?", (ref.cid,))
    legacy = data[:data.rindex(b"\x00memostore-xxh3-128:")]
    execute(db_path, "UPDATE memostore_values SET inline_data = ?, size_bytes = ? WHERE cid = ?",
            (legacy, len(legacy), ref.cid))
    with Storage(db_path=db_path) as fresh:
        assert fresh.unwrap(fit(50)).weights[-1] == 49.0
    assert fresh.check().ok


@pytest.mark.parametrize("where", ["marker", "digest", "payload"])
def test_damage_anywhere_in_a_checksummed_pickle_is_caught(db_path, where):
    with Storage(db_path=db_path):
        ref = fit(50)
    [(data,)] = execute(db_path, "SELECT inline_data FROM memostore_values WHERE cid = ?", (ref.cid,))
    marker_at = data.rindex(b"\x00memostore-xxh3-128:")
    position = {"marker": marker_at + 3, "digest": len(data) - 1, "payload": marker_at - 5}[where]
    flip_inline_byte(db_path, ref.cid, position=position)
    with pytest.raises(CorruptValueError):
        Storage(db_path=db_path).reader.load_values([ref.cid])


def test_check_works_on_every_kind_of_store(storage):
    with storage:
        total(floats(10))
        fit(3)
    report = storage.check()
    assert report.ok and report.values_checked == 5 and report.unverified == []


@op(ignore=["n_jobs"])
def scaled(values, /, factor=2, *, n_jobs=1):
    RUNS.append("scaled")
    return [v * factor for v in values]


def test_a_damaged_value_of_a_call_with_positional_only_and_ignored_arguments_recomputes(db_path):
    with Storage(db_path=db_path):
        ref = scaled([1, 2, 3], 10, n_jobs=4)
    flip_inline_byte(db_path, ref.cid)
    fresh = Storage(db_path=db_path)
    with fresh:
        lazy = scaled([1, 2, 3], 10, n_jobs=2)
    assert fresh.unwrap(lazy) == [10, 20, 30] and fresh.check().ok


@op
def report(text, folder):
    RUNS.append("report")
    target = Path(folder) / "report.txt"
    target.write_text(text)
    return File(target)


def test_a_forged_file_with_a_valid_checksum_is_not_returned(db_path, tmp_path, monkeypatch):
    from memostore.serialization import dumps

    monkeypatch.setenv("MEMOSTORE_FILES_DIR", str(tmp_path / "restored"))
    work = tmp_path / "work"
    work.mkdir()
    with Storage(db_path=db_path) as storage:
        ref = report("genuine", str(work))
    forged = tmp_path / "report.txt"
    forged.write_text("forged")
    _, data = dumps(File(forged))  # the same name, other bytes, and a checksum that matches them
    execute(db_path, "UPDATE memostore_values SET inline_data = ?, size_bytes = ? WHERE cid = ?",
            (data, len(data), ref.cid))
    assert "name or bytes are not those of its content id" in storage.check().damaged[ref.cid]
    fresh = Storage(db_path=db_path, allow_pickle=False)
    with pytest.raises(CorruptValueError, match="name or bytes are not those of its content id"):
        fresh.reader.load_values([ref.cid])
    with fresh:
        lazy = report("genuine", str(work))
    RUNS.clear()
    assert fresh.unwrap(lazy).read_bytes() == b"genuine" and RUNS == ["report"]  # recomputed instead
    assert storage.check().ok


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_a_hit_on_a_damaged_value_is_repaired_on_every_kind_of_store(kind, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    options = {"db_url": url} if url else {"db_path": tmp_path / "runs.db"}
    with Storage(**options) as storage:
        ref = words(5)
    damage_value_row(storage.config.url, ref.cid)
    RUNS.clear()
    fresh = Storage(**options)
    with fresh:
        lazy = words(5)
    assert fresh.unwrap(lazy)[-1] == "word4" and RUNS == ["words"]
    with Storage(**options) as reader:
        assert reader.unwrap(words(5))[-1] == "word4"
    assert RUNS == ["words"] and reader.check().ok
