"""storage.backup(path): a consistent copy of a live store, blobs included."""

from __future__ import annotations

import numpy as np
import pytest

from memostore import Storage, StorageError, StoreLocationError, op


@op
def ramp(n):
    return np.arange(n, dtype=np.float64)


def test_a_backup_holds_every_committed_call_and_value_blobs_included(tmp_path):
    storage = Storage(db_path=tmp_path / "live.db", blob_threshold_bytes=1_000)
    with storage:
        refs = [ramp(n) for n in (3, 5_000)]  # the second lives in the blob store
    writer = Storage(db_path=tmp_path / "live.db")  # another connection keeps writing
    with writer:
        ramp(7)
    copy_path = storage.backup(tmp_path / "copy.db")
    with writer:
        ramp(8)  # after the backup: not in it
    copy = Storage(db_path=copy_path)
    assert copy._store.counts()["calls"] == 3
    assert [len(copy.unwrap(copy.load_ref(ref.hid))) for ref in refs] == [3, 5_000]
    assert (tmp_path / "copy.db-blobs").is_dir()


def test_an_in_memory_store_can_be_saved_to_a_file(tmp_path):
    storage = Storage()
    with storage:
        ref = ramp(4)
    copy = Storage(db_path=storage.backup(tmp_path / "saved.db"))
    assert list(copy.unwrap(copy.load_ref(ref.hid))) == [0.0, 1.0, 2.0, 3.0]


def test_a_backup_never_overwrites_a_file(tmp_path):
    storage = Storage(db_path=tmp_path / "live.db")
    (tmp_path / "taken.db").write_text("keep me")
    with pytest.raises(StoreLocationError, match="exists"):
        storage.backup(tmp_path / "taken.db")
    assert (tmp_path / "taken.db").read_text() == "keep me"


def test_a_backup_to_a_folder_says_it_is_one(tmp_path):
    storage = Storage(db_path=tmp_path / "live.db")
    (tmp_path / "backups").mkdir()
    with pytest.raises(StoreLocationError, match=r"backups': it is a folder; give the path of a new file in it, "
                                                 r"e.g. '.*backup.db'"):
        storage.backup(tmp_path / "backups")


def test_a_backup_creates_its_missing_folder_as_a_report_does(tmp_path):
    storage = Storage()
    with storage:
        ref = ramp(3)
    copy = Storage(db_path=storage.backup(tmp_path / "backups" / "today" / "copy.db"))
    assert list(copy.unwrap(copy.load_ref(ref.hid))) == [0.0, 1.0, 2.0]
    (tmp_path / "a_file").write_text("in the way")
    with pytest.raises(StoreLocationError, match="cannot back up to .*: cannot create its folder .*a_file"):
        storage.backup(tmp_path / "a_file" / "copy.db")


def test_a_postgres_store_says_how_to_back_it_up(postgres_url, tmp_path):
    storage = Storage(db_url=postgres_url, blob_dir=tmp_path / "blobs")
    with pytest.raises(StorageError, match="pg_dump"):
        storage.backup(tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
