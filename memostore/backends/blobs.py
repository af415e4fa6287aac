"""Large values as content-addressed files: ``<root>/<cid[:2]>/<cid>``.

A blob is written to a temporary file in its final directory, then renamed
into place, so a reader (or a killed process) never sees half a blob, and two
writers of the same content both succeed with one file left.

Blobs are not fsynced, the same promise SQLite makes the metadata with
``synchronous=NORMAL``: a killed process loses nothing committed, an OS crash
or power cut may lose the last writes. Flushing a 1 GiB blob to disk would
triple the time to store it. The values table records each blob's size, and
loading checks it (``check_size``), so a blob cut short by a crash is reported,
never returned as a damaged array.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

from memostore.errors import MissingBlobError, StoreLocationError

TEMP_PREFIX = ".tmp-"  # a blob being written; renamed to its cid when complete
_HEX_DIGITS = frozenset("0123456789abcdef")


def _is_cid(name: str) -> bool:
    return len(name) == 32 and _HEX_DIGITS.issuperset(name)


class FileBlobStore:
    """Blobs in a directory, created on first write.

    >>> import tempfile
    >>> blobs = FileBlobStore(tempfile.mkdtemp())
    >>> blobs.put("ab" * 16, b"payload")
    >>> blobs.get("ab" * 16)
    b'payload'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_of(self, cid: str) -> Path:
        """Where the blob for ``cid`` lives."""
        return self.root / cid[:2] / cid

    def put(self, cid: str, data: bytes | memoryview | Sequence[bytes | memoryview]) -> None:
        """Store ``data`` (or these buffers, one after another) under ``cid`` atomically; a no-op if present."""
        target = self.path_of(cid)
        if target.exists():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
        except OSError as err:
            raise StoreLocationError(
                f"cannot write blobs under {self.root}: {err.strerror}; "
                "check that the directory is writable"
            ) from err
        try:
            with os.fdopen(descriptor, "wb") as handle:
                for buffer in ([data] if isinstance(data, (bytes, memoryview)) else data):
                    handle.write(buffer)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def get(self, cid: str) -> bytes:
        """The bytes under ``cid``; raises MissingBlobError if absent."""
        with self.open(cid) as handle:
            return handle.read()

    def open(self, cid: str) -> BinaryIO:
        """The blob under ``cid`` opened for reading (a large array is read straight into its memory)."""
        path = self.path_of(cid)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise MissingBlobError(
                f"the value {cid} is recorded as a blob at {path}, but the file is gone; "
                "restore the blob directory beside the database (or drop the calls that use it)"
            ) from None

    def check_size(self, cid: str, handle: BinaryIO, size_bytes: int) -> None:
        """Raise MissingBlobError if the open blob does not hold the ``size_bytes`` stored for it."""
        found = os.fstat(handle.fileno()).st_size
        if found != size_bytes:
            raise MissingBlobError(
                f"the blob of value {cid} at {self.path_of(cid)} holds {found} bytes, but {size_bytes} were "
                "stored: it is damaged (the machine may have crashed before it reached the disk); "
                "drop the calls that use it with storage.drop_calls and run them again"
            )

    def exists(self, cids: Sequence[str]) -> set[str]:
        """The cids among ``cids`` that are stored."""
        return {cid for cid in cids if self.path_of(cid).exists()}

    def reclaim(self, stored: set[str], older_than_s: float) -> tuple[int, int]:
        """Remove the files older than ``older_than_s`` that no stored value names:
        temporary files of writers killed mid-blob, and blobs whose value row is
        gone. Younger files may belong to a flush not yet committed. Returns the
        number of files removed and their bytes."""
        if not self.root.is_dir():
            return 0, 0
        cutoff = time.time() - older_than_s
        files = freed = 0
        for directory in self.root.iterdir():
            if not (directory.is_dir() and len(directory.name) == 2):
                continue
            for path in directory.iterdir():
                name = path.name
                if not (name.startswith(TEMP_PREFIX) or (_is_cid(name) and name not in stored)):
                    continue
                try:
                    status = path.stat()
                    if status.st_mtime > cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                files, freed = files + 1, freed + status.st_size
        return files, freed

    def delete(self, cids: Iterable[str]) -> int:
        """Remove these blobs (absent ones are skipped); returns bytes freed."""
        freed = 0
        for cid in cids:
            path = self.path_of(cid)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
        return freed
