"""Storage: the block, values, reports, pickling and bad locations."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest

from memostore import (
    MissingBlobError,
    NotStoredError,
    Ref,
    Storage,
    StorageOptionError,
    StoreLocationError,
    UntrustedValueError,
    op,
)

from helpers import run_python


@op
def inc(x):
    return x + 1


@op
def make_frame(n):
    return pd.DataFrame({"i": pd.Categorical(range(n))})  # a categorical column is stored pickled


def test_leaving_the_block_commits(db_path):
    storage = Storage(db_path=db_path)
    with storage:
        inc(0)  # an op's first call may be claimed, and so committed at once (compute-once across processes)
    with storage:
        inc(1)  # a fast op's calls are not claimed: they wait for the end of the block
        assert storage.call_path.pending_calls == 1
    assert storage.call_path.pending_calls == 0
    assert "calls=2" in repr(Storage(db_path=db_path))


def test_an_error_in_the_block_keeps_finished_calls(db_path):
    storage = Storage(db_path=db_path)
    with pytest.raises(KeyError):
        with storage:
            inc(1)
            inc(2)
            raise KeyError("boom")
    reopened = Storage(db_path=db_path)
    assert "calls=2" in repr(reopened)


def test_nested_blocks_of_the_same_storage(storage):
    with storage:
        with storage:
            inner = inc(1)
        outer = inc(2)
    assert storage.unwrap([inner, outer]) == [2, 3]


def test_inner_block_of_another_storage_takes_over(tmp_path):
    first, second = Storage(), Storage(db_path=tmp_path / "second.db")
    with first:
        with second:
            inc(10)
        inc(20)
    assert "calls=1" in repr(first) and "calls=1" in repr(second)


def test_unwrap_loads_lazy_refs_through_containers(storage):
    with storage:
        refs = [inc(i) for i in range(3)]
    with storage:
        lazy = [inc(i) for i in range(3)]
    assert not any(ref.in_memory for ref in lazy)
    assert storage.unwrap({"values": lazy, "pair": (lazy[0], 7)}) == {"values": [1, 2, 3], "pair": (1, 7)}
    assert all(ref.in_memory for ref in lazy)
    assert storage.unwrap(refs[0]) == 1


def test_unwrap_of_a_ref_from_another_store_says_so(storage, tmp_path):
    with storage:
        made_here = inc(1)
    other = Storage(db_path=tmp_path / "other.db")
    lazy = storage.load_ref(made_here.hid)
    where = re.escape(f"this store (db_path='{tmp_path / 'other.db'}')")
    with pytest.raises(NotStoredError, match=rf"{where} has no ref with hid "
                                             rf"{made_here.hid}: the Ref comes from a different store"):
        other.unwrap(lazy)
    with other:
        inc(1)
    assert other.unwrap(lazy) == 2  # the same computation, stored there too


def test_attach_copies_unless_inplace(storage):
    with storage:
        inc(5)
    with storage:
        lazy = inc(5)
    attached = storage.attach([lazy])
    assert attached[0].in_memory and attached[0].value == 6
    assert not lazy.in_memory
    storage.attach(lazy, inplace=True)
    assert lazy.in_memory


def test_load_ref_by_hid(storage):
    with storage:
        ref = inc(1)
    loaded = storage.load_ref(ref.hid)
    assert loaded == ref and not loaded.in_memory
    assert storage.load_ref(ref.hid, in_memory=True).value == 2
    with pytest.raises(NotStoredError, match="no ref with hid"):
        storage.load_ref("0" * 32)


def test_creator_and_consumers(storage):
    with storage:
        one = inc(0)
        two = inc(one)
        also = inc(one)
    assert storage.get_ref_creator(two).inputs["x"] == one
    assert storage.get_ref_creator(Ref("c" * 32, "h" * 32)) is None
    consumers = storage.get_consumers(one)
    assert {c.hid for c in consumers} == {storage.get_ref_creator(two).hid}
    assert two.hid == also.hid



@op(nout=2)
def split_pair(x):
    return x // 10, x % 10


@op
def ratio(a, b):
    return a / b


def test_single_lookups_answer_as_lists_do(storage):
    """A single ref takes its own narrow query: the same calls, refs in the same order, failed calls
    with their error, and nothing kept from before a drop."""
    with storage:
        tens, units = split_pair(42)
        total = inc(tens)
        _, zero = split_pair(40)
    storage.map(ratio, [{"a": tens, "b": zero}, {"a": tens, "b": tens}], on_error="record", progress=False)
    creator = storage.get_ref_creator(units)
    assert list(creator.outputs) == ["output_0", "output_1"] and creator.outputs["output_1"] == units
    assert creator.multi_output and creator.inputs["x"].hid == storage.get_creators([units, total])[0].inputs["x"].hid
    consumers = storage.get_consumers(tens)
    assert consumers == storage.get_consumers([tens, tens.hid]) == storage.get_consumers(tens.hid)
    assert [c.op for c in consumers] == ["inc", "ratio", "ratio"]
    assert [c.started_at for c in consumers] == sorted(c.started_at for c in consumers)
    [failed] = [c for c in consumers if c.status == "failed"]
    assert failed.error.type == "builtins.ZeroDivisionError" and list(failed.inputs) == ["a", "b"]
    [same_twice] = [c for c in consumers if c.op == "ratio" and c.status == "ok"]
    assert same_twice.inputs["a"] == same_twice.inputs["b"] == tens
    assert storage.get_consumers("0" * 32) == []  # a well-formed hid not stored: nothing uses it
    with pytest.raises(StorageOptionError, match=r"storage.get_consumers takes Refs or ref hids: .*'not a hid'"):
        storage.get_consumers("not a hid")  # a string that cannot be a hid is a mistake, not an empty answer
    storage.drop_calls([storage.get_ref_creator(total)])
    assert [c.op for c in storage.get_consumers(tens)] == ["ratio", "ratio"]
    assert storage.get_ref_creator(total) is None

def test_ref_lookups_take_a_ref_a_hid_or_a_list_of_them(storage):
    with storage:
        one = inc(0)
        two = inc(one)
    creator = storage.get_ref_creator(two)
    assert storage.get_ref_creator(two.hid) == creator
    assert storage.get_ref_creator([two, two.hid, one.hid, "0" * 32]) == [creator, creator,
                                                                         storage.get_ref_creator(one), None]
    assert storage.get_ref_creator("0" * 32) is None and storage.get_ref_creator([]) == []
    assert storage.lineage(two.hid).equals(storage.lineage(two))
    both = storage.lineage([two.hid, one])
    assert list(both["depth"]) == [0, 1, 2, 0] and list(both["repeated"]) == [False, False, False, True]
    with pytest.raises(NotStoredError, match=r"storage.lineage: no ref with hid '0{32}' is stored"):
        storage.lineage("0" * 32)


@pytest.mark.parametrize("method", ["get_ref_creator", "get_creators", "get_consumers", "lineage"])
@pytest.mark.parametrize("bad, got", [("not-a-hid", "the string 'not-a-hid', which is not a hid"),
                                      (["A" * 32], "the string 'AAAA"), (5, "got int 5"), ([7], "got int 7")])
def test_ref_lookups_name_an_argument_that_is_no_ref(method, bad, got):
    storage = Storage()  # checked before any query: one backend is enough
    with pytest.raises(StorageOptionError, match=rf"storage.{method} takes Refs or ref hids: .*{got}"):
        getattr(storage, method)(bad)


def test_a_location_that_is_no_path_is_named(tmp_path):
    with pytest.raises(StorageOptionError, match=r"Storage\(db_path=...\) takes a path .*got int 5"):
        Storage(db_path=5)
    with pytest.raises(StorageOptionError, match=r"Storage\(blob_dir=...\) takes a path .*got bytes"):
        Storage(db_path=tmp_path / "runs.db", blob_dir=b"blobs")
    with pytest.raises(StorageOptionError, match=r"Storage\(db_url=...\) takes a URL string, got int 5"):
        Storage(db_url=5)


def test_calls_committed_by_another_process_are_found(db_path, tmp_path):
    @op(version="1")  # the same op as the other process's, whose source differs
    def plus_one(x):
        return x + 1

    storage = Storage(db_path=db_path)
    with storage:
        plus_one(0)  # opens the store in this process first
    run_python(f"""
        from memostore import Storage, op
        @op(version="1")
        def plus_one(x):
            return x + 1
        with Storage(db_path={str(db_path)!r}):
            plus_one(41)
    """, tmp_path)
    with storage:
        found = plus_one(41)
    assert not found.in_memory and storage.unwrap(found) == 42


def test_large_values_go_to_blobs_once(db_path):
    storage = Storage(db_path=db_path, blob_threshold_bytes=1024)

    @op
    def big(n):
        return np.ones(n)

    @op
    def same_again(n):
        return np.ones(n)

    with storage:
        big(10_000)
        same_again(10_000)
        big(10)
    blob_files = [p for p in (db_path.parent / "runs.db-blobs").rglob("*") if p.is_file()]
    assert len(blob_files) == 1
    with storage:
        loaded = storage.unwrap(big(10_000))
    np.testing.assert_array_equal(loaded, np.ones(10_000))


@pytest.mark.parametrize("array", [
    np.arange(5000, dtype=np.float32).reshape(50, 100),
    np.asfortranarray(np.arange(5000.0).reshape(50, 100)),  # stored C-ordered, same values
    np.arange(5000.0)[::2],  # a strided view
    np.array(["2024-01-01"] * 2000, dtype="datetime64[ns]"),
    np.zeros(1000, dtype=[("x", "i4"), ("y", "f8")]),
    np.float64(2.5),
], ids=["2d", "fortran", "strided", "datetime", "structured", "scalar"])
def test_arrays_round_trip_through_blobs_in_a_fresh_process(db_path, array):
    """Arrays are written from their own memory and read back into new memory, exactly."""
    storage = Storage(db_path=db_path, blob_threshold_bytes=16)

    @op
    def passthrough(x):
        return x

    with storage:
        passthrough(array)
    blob_files = [p for p in (db_path.parent / "runs.db-blobs").rglob("*") if p.is_file()]
    assert len(blob_files) == 1, "an output equal to its input is stored once"
    reopened = Storage(db_path=db_path)
    loaded = reopened.unwrap(reopened.cf(passthrough).df(values="refs")["var_0"][0])
    assert type(loaded) is type(array) and loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)
    if isinstance(loaded, np.ndarray):
        assert loaded.flags.writeable and not isinstance(loaded, np.memmap), "an array of its own"


@op
def thousand_floats():
    return np.arange(1000.0)


def blob_of_one_call(db_path):
    """Store one call whose output goes to a blob file; that file."""
    with Storage(db_path=db_path, blob_threshold_bytes=100):
        thousand_floats()
    [blob] = [p for p in (db_path.parent / "runs.db-blobs").rglob("*") if p.is_file()]
    return blob


def test_missing_blob_is_a_clear_error(db_path):
    blob_of_one_call(db_path).unlink()
    storage = Storage(db_path=db_path, blob_threshold_bytes=100)
    with storage:
        ref = thousand_floats()
    with pytest.raises(FileNotFoundError, match="blob"):
        storage.reader.load_values([ref.cid])
    assert storage.unwrap(ref)[-1] == 999.0  # a hit whose blob is gone recomputes it and writes it again
    assert storage.reader.load_values([ref.cid])[ref.cid][-1] == 999.0


def test_a_blob_cut_short_by_a_crash_is_reported_not_loaded(db_path):
    """Blobs are not fsynced (like SQLite's synchronous=NORMAL): after an OS crash the
    file may be shorter than stored; loading says so instead of returning a damaged array."""
    blob = blob_of_one_call(db_path)
    blob.write_bytes(blob.read_bytes()[:-800])
    fresh = Storage(db_path=db_path, blob_threshold_bytes=100)
    with fresh:
        ref = thousand_floats()
    with pytest.raises(MissingBlobError, match=rf"{ref.cid}.*holds \d+ bytes, but \d+ were stored.*drop_calls"):
        fresh.reader.load_values([ref.cid])
    assert fresh.unwrap(ref)[-1] == 999.0 and fresh.check().ok  # recomputed, and the file written again


def test_untrusted_storage_refuses_pickles(db_path):
    with Storage(db_path=db_path):
        make_frame(3)
        inc(1)
    cautious = Storage(db_path=db_path, allow_pickle=False)
    with cautious:
        frame_ref = make_frame(3)
        number = inc(1)
    assert cautious.unwrap(number) == 2
    with pytest.raises(UntrustedValueError, match=rf"value {frame_ref.cid[:12]}\.\.\. is stored as a pickle"):
        cautious.unwrap(frame_ref)


def test_a_frame_names_the_variable_whose_value_it_may_not_unpickle(db_path):
    with Storage(db_path=db_path):
        stored = make_frame(3)
    frame = Storage(db_path=db_path, allow_pickle=False).cf(make_frame).rename(vars={"var_0": "table"})
    with pytest.raises(UntrustedValueError, match=r"cf.df\(\): variable 'table' \(made by op 'make_frame'\) "
                                                  rf"holds value {stored.cid[:12]}\.\.\., stored as a pickle"
                                                  r".*allow_pickle=True.*df\(lazy_vars=\['table'\]\)") as caught:
        frame.df()
    assert caught.value.cid == stored.cid
    assert frame.df(lazy_vars=["table"])["table"].tolist() == [stored]  # the advised way reads it unloaded


def test_storage_pickles_to_its_configuration(db_path):
    storage = Storage(db_path=db_path, blob_threshold_bytes=10)
    with storage:
        inc(1)
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.config == storage.config
    with copy:
        assert not inc(1).in_memory


def test_repr_shows_location_and_counts(db_path):
    storage = Storage(db_path=db_path)
    with storage:
        inc(1)
        inc(2)
    text = repr(storage)
    assert text.startswith(f"Storage(db_path={str(db_path)!r}, ops=1, calls=2, values=3, bytes=")


@pytest.mark.parametrize("bad", ["missing_dir/runs.db", "a_file/runs.db"])
def test_db_path_in_a_missing_directory(tmp_path, bad):
    (tmp_path / "a_file").write_text("not a directory")
    with pytest.raises(StoreLocationError, match="does not exist"):
        Storage(db_path=tmp_path / bad)


def test_db_path_on_a_read_only_filesystem():
    with pytest.raises(StoreLocationError, match="writable"):
        Storage(db_path="/proc/runs.db")


def test_db_path_that_cannot_be_opened(tmp_path):
    directory = tmp_path / "dir.db"
    directory.mkdir()  # a directory where the db file should be
    with pytest.raises(StoreLocationError, match="cannot open the store"):
        Storage(db_path=directory)


def test_db_path_naming_a_folder_says_so(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(StoreLocationError, match=r"db_path='.*adir': it is a folder, not a store file; give the path "
                                                 r"of the store's .db file in it, e.g. '.*adir/runs.db'"):
        Storage(db_path=tmp_path / "adir")


def test_versions_lists_every_version_with_counts(db_path):
    storage = Storage(db_path=db_path)

    @op
    def scale(x):
        return x * 2

    with storage:
        scale(1)
        scale(2)
    old_version = scale.version

    @op
    def scale(x):  # noqa: F811 - a new version of the same op
        return x * 3

    with storage:
        scale(1)
    table = storage.versions(scale)
    assert list(table.columns) == ["version", "calls", "first_used", "last_used", "is_current", "dependencies"]
    rows = table.set_index("version")
    assert rows.loc[old_version, "calls"] == 2 and not rows.loc[old_version, "is_current"]
    assert rows.loc[scale.version, "calls"] == 1 and rows.loc[scale.version, "is_current"]
    assert (table["last_used"] >= table["first_used"]).all()


def test_paths_are_resolved_when_the_storage_is_made(tmp_path, monkeypatch):
    """A later os.chdir must not move the blobs: other processes would not find them."""
    (tmp_path / "home").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "home")
    storage = Storage(db_path="runs.db", blob_threshold_bytes=100)
    assert storage.config.db_path == str(tmp_path / "home" / "runs.db")
    monkeypatch.chdir(tmp_path / "elsewhere")
    with storage:
        thousand_floats()
    assert not list((tmp_path / "elsewhere").iterdir())
    assert len([p for p in (tmp_path / "home" / "runs.db-blobs").rglob("*") if p.is_file()]) == 1
    copy = pickle.loads(pickle.dumps(storage))  # what a worker process gets
    assert copy.config.db_path == storage.config.db_path
    run_python(f"""
        import numpy as np
        from memostore import Storage
        storage = Storage(db_path={str(tmp_path / "home" / "runs.db")!r})
        [ref] = storage.cf("thousand_floats").df(values="refs")["var_0"]
        assert np.array_equal(storage.unwrap(ref), np.arange(1000.0))
    """, tmp_path)


def test_a_symlinked_db_path_keeps_its_blobs_beside_the_real_file(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    through_link = Storage(db_path=tmp_path / "link" / "runs.db", blob_threshold_bytes=100)
    assert through_link.config.db_path == str(tmp_path / "real" / "runs.db")
    with through_link:
        thousand_floats()
    direct = Storage(db_path=tmp_path / "real" / "runs.db", blob_threshold_bytes=100)
    with direct:
        ref = thousand_floats()
    np.testing.assert_array_equal(direct.unwrap(ref), np.arange(1000.0))
