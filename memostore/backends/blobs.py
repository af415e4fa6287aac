"""Large values as content-addressed files: ``<root>/<cid[:2]>/<cid>``.

A blob is written to a temporary file in its final directory, then renamed
into place, so a reader (or a killed process) never sees half a blob, and two
writers of the same content both succeed with one file left.

Blobs are not fsynced, the same promise SQLite makes the metadata with
``synchronous=NORMAL``: a killed process loses nothing committed, an OS crash
or power cut may lose the last writes. Flushing a 1 GiB blob to disk would
triple the time to store it. The values table records each blob's size, and
loading checks it (``check_size``), so a blob cut short by a crash is reported,
never returned as a damaged array (and the loaded value is checked against its
content id).

A store may come from someone else: a cid becomes a file name only if it is
32 lowercase hex digits, and a blob is read or deleted only if neither it nor
its folder is a symbolic link, so no file outside the blob directory is ever
touched. Writing a blob that exists replaces the file unless it already holds
exactly these bytes, so a damaged or planted file is repaired by the next write.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

import xxhash

from memostore.errors import CorruptValueError, MissingBlobError, StoreLocationError

logger = logging.getLogger(__name__)

_CID = re.compile(r"[0-9a-f]{32}")
_COMPARE_CHUNK_BYTES = 16 * 2**20


def is_content_id(text: object) -> bool:
    """Whether ``text`` is a content id (32 lowercase hex digits), safe to use as a file name.

    >>> is_content_id("ab" * 16), is_content_id("../../x")
    (True, False)
    """
    return isinstance(text, str) and _CID.fullmatch(text) is not None

TEMP_PREFIX = ".tmp-"  # a blob being written; renamed to its cid when complete


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
        """Where the blob for ``cid`` lives; raises CorruptValueError for anything but a content id."""
        if not is_content_id(cid):
            raise CorruptValueError(
                f"the store names a blob {cid!r}, which is not a content id (32 lowercase hex digits); "
                "the store is damaged or was tampered with, and memostore will not use it as a file name",
                cid=None)
        return self.root / cid[:2] / cid

    def _checked_path(self, cid: str) -> Path:
        """``path_of``, refusing a blob (or folder) that is a symbolic link, which could point anywhere."""
        path = self.path_of(cid)
        if path.is_symlink() or path.parent.is_symlink():
            raise CorruptValueError(
                f"the blob of value {cid} at {path} is a symbolic link; memostore reads and deletes only "
                "files inside the blob directory. Remove the link and run storage.check(repair=True)", cid=cid)
        return path

    def put(self, cid: str, data: bytes | memoryview | Sequence[bytes | memoryview]) -> None:
        """Store ``data`` (or these buffers, one after another) under ``cid`` atomically.

        A file already there is kept only if it holds exactly these bytes;
        otherwise (damaged, or planted) it is replaced.
        """
        buffers = [data] if isinstance(data, (bytes, memoryview)) else list(data)
        target = self._checked_path(cid)  # never written through a link
        if target.exists() and _holds(target, buffers):
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
                for buffer in buffers:
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
        path = self._checked_path(cid)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise MissingBlobError(
                f"the value {cid} is recorded as a blob at {path}, but the file is gone; restore the "
                f"blob directory {str(self.root)!r} (beside a SQLite store, or the blob_dir every machine "
                "sharing a server store mounts at that path), or drop the calls that use it"
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
        return {cid for cid in cids if is_content_id(cid) and self.path_of(cid).exists()}

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
                if not (name.startswith(TEMP_PREFIX) or (is_content_id(name) and name not in stored)):
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
        """Remove these blobs (absent ones are skipped); returns bytes freed.

        Ids that are not content ids, and links, are skipped with a warning:
        a damaged or tampered store never makes memostore delete anything else.
        """
        freed = 0
        for cid in cids:
            try:
                path = self._checked_path(cid)
            except CorruptValueError as err:
                logger.warning("not deleting blob: %s", err)
                continue
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
        return freed

    def stored_files(self) -> Iterator[tuple[str, int]]:
        """Every blob file as (cid, size in bytes), and temporary files as (their name, size)."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.is_symlink() and (
                        is_content_id(path.name) or path.name.startswith(TEMP_PREFIX)):
                    yield path.name, path.stat().st_size


def _holds(path: Path, buffers: list[bytes | memoryview]) -> bool:
    """Whether the file at ``path`` holds exactly the concatenated buffers (compared by xxh3-128)."""
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    try:
        if path.is_symlink() or path.stat().st_size != sum(view.nbytes for view in views):
            return False
        expected = xxhash.xxh3_128()
        for view in views:
            expected.update(view)
        found = xxhash.xxh3_128()
        with open(path, "rb") as handle:
            while chunk := handle.read(_COMPARE_CHUNK_BYTES):
                found.update(chunk)
    except OSError:
        return False
    return found.digest() == expected.digest()
