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
