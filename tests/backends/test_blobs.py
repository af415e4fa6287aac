"""Content-addressed blob files."""

from __future__ import annotations

import pytest

from memostore import MissingBlobError
from memostore.backends.blobs import FileBlobStore

CID = "ab" * 16


def test_put_get_exists_delete(tmp_path):
    blobs = FileBlobStore(tmp_path / "blobs")
    blobs.put(CID, b"payload")
    assert blobs.get(CID) == b"payload"
    assert blobs.exists([CID, "cd" * 16]) == {CID}
    assert blobs.delete([CID, "cd" * 16]) == len(b"payload")
    assert blobs.exists([CID]) == set()


def test_writes_leave_no_temporary_files(tmp_path):
    blobs = FileBlobStore(tmp_path)
    blobs.put(CID, b"x" * 10_000)
    blobs.put(CID, b"x" * 10_000)
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [CID]


def test_missing_blob_names_the_path(tmp_path):
    with pytest.raises(MissingBlobError, match=str(tmp_path)):
        FileBlobStore(tmp_path).get(CID)


@pytest.mark.parametrize("bad", ["../../x", "/etc/passwd", "AB" * 16, "ab" * 15, "ab" * 16 + "\n", ""])
def test_only_content_ids_become_file_names(tmp_path, bad):
    from memostore import CorruptValueError

    outside = tmp_path / "x"
    outside.write_bytes(b"keep")
    blobs = FileBlobStore(tmp_path / "a" / "blobs")
    with pytest.raises(CorruptValueError, match="not a content id"):
        blobs.get(bad)
    with pytest.raises(CorruptValueError, match="not a content id"):
        blobs.put(bad, b"data")
    assert blobs.delete([bad]) == 0 and blobs.exists([bad]) == set()
    assert outside.read_bytes() == b"keep"


def test_a_write_replaces_a_file_with_other_content_and_keeps_an_identical_one(tmp_path):
    blobs = FileBlobStore(tmp_path)
    blobs.path_of(CID).parent.mkdir(parents=True)
    blobs.path_of(CID).write_bytes(b"planted!")  # same size, other bytes
    blobs.put(CID, b"payload!")
    assert blobs.get(CID) == b"payload!"
    inode = blobs.path_of(CID).stat().st_ino
    blobs.put(CID, [b"pay", memoryview(b"load!")])
    assert blobs.path_of(CID).stat().st_ino == inode


def test_stored_files_lists_blobs_and_temporary_files(tmp_path):
    blobs = FileBlobStore(tmp_path)
    blobs.put(CID, b"payload")
    (tmp_path / CID[:2] / ".tmp-left-by-a-killed-process").write_bytes(b"xx")
    (tmp_path / CID[:2] / "notes.txt").write_bytes(b"not ours")
    assert sorted(blobs.stored_files()) == [(".tmp-left-by-a-killed-process", 2), (CID, 7)]
