"""Large values in an object store (S3, GCS, Azure, ...) through fsspec: ``<url>/<cid[:2]>/<cid>``.

A team on PostgreSQL shares one store between laptops and a cluster when the
blobs live where every machine can reach them. An object store makes each
put atomic (a reader sees the whole object or none), so no temporary names
are needed; the values table records each blob's size, and loading checks
it, then checks the value against its content id, as for files.

Credentials and endpoints come from the object store's usual configuration
(for S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``,
``AWS_ENDPOINT_URL`` for an S3-compatible server), never from the store, so
they stay out of the database and out of pickled storages sent to workers.

As for files, a cid becomes an object name only if it is 32 lowercase hex
digits, so a tampered store cannot name an object outside the blob prefix.
"""

from __future__ import annotations

import contextlib
import functools
import time
from datetime import datetime
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence, TypeVar

import xxhash

from memostore.backends.base import BlobStore
from memostore.backends.blobs import FileBlobStore, is_content_id
from memostore.config import is_object_url
from memostore.errors import (
    CorruptValueError,
    MemostoreError,
    MissingBlobError,
    MissingExtraError,
    StoreLocationError,
    StoreUnavailableError,
)


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """Failures to reach the object store (no endpoint, no credentials, a refused request) as
    StoreUnavailableError naming the blob location and what to check; an absent object stays
    FileNotFoundError, which the callers turn into MissingBlobError."""
    try:
        yield
    except (FileNotFoundError, MemostoreError):
        raise
    except Exception as err:  # botocore's and other clients' errors share no base class
        raise StoreUnavailableError(
            f"cannot reach the blob store at {url}: {type(err).__name__}: {err}; check the object store's "
            "credentials (for S3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws), its endpoint "
            "(AWS_ENDPOINT_URL for an S3-compatible server) and that the bucket exists; calls not committed "
            "yet stay pending until the next commit") from err


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _over_the_network(method: _Method) -> _Method:
    """``method`` of an ObjectBlobStore, its failures to reach the store made clear (see ``_reaching``)."""
    @functools.wraps(method)
    def reaching(self: ObjectBlobStore, *args: Any, **kwargs: Any) -> Any:
        with _reaching(self.url):
            return method(self, *args, **kwargs)
    return reaching  # type: ignore[return-value]


def open_blob_store(location: str) -> BlobStore:
    """The blob store at ``location``: a local folder (a path or ``file://`` URL) or an object store URL."""
    if is_object_url(location):
        return ObjectBlobStore(location)
    return FileBlobStore(location.removeprefix("file://"))


class ObjectBlobStore:
    """Blobs under an fsspec URL such as ``s3://bucket/prefix``."""

    def __init__(self, url: str) -> None:
        try:
            from fsspec.core import url_to_fs
        except ImportError as err:
            raise MissingExtraError(
                f"blob_dir={url!r} is an object store URL, which needs fsspec; "
                'install it with: pip install "memostore[s3]"') from err
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = url_to_fs(self.url)
        except (ImportError, ValueError) as err:
            raise MissingExtraError(
                f"cannot open blob_dir={url!r}: {err}; for s3:// URLs install s3fs with: "
                'pip install "memostore[s3]"') from err

    def _key(self, cid: str) -> str:
        if not is_content_id(cid):
            raise CorruptValueError(
                f"the store names a blob {cid!r}, which is not a content id (32 lowercase hex digits); "
                "the store is damaged or was tampered with, and memostore will not use it as an object name",
                cid=None)
        return f"{self.root}/{cid[:2]}/{cid}"

    def where(self, cid: str) -> str:
        """The URL of the blob of ``cid``, for messages."""
        return f"{self.url}/{cid[:2]}/{cid}"

    @_over_the_network
    def put(self, cid: str, data: bytes | memoryview | Sequence[bytes | memoryview]) -> None:
        """Store ``data`` (or these buffers, one after another) under ``cid`` in one atomic put.

        An object already there is kept only if it holds exactly these bytes;
        otherwise (damaged, or planted) it is replaced.
        """
        buffers = [data] if isinstance(data, (bytes, memoryview)) else list(data)
        key = self._key(cid)
        if self._holds(key, buffers):
            return
        payload = b"".join(memoryview(buffer).cast("B") for buffer in buffers)
        try:
            self.fs.pipe_file(key, payload)
        except (OSError, PermissionError) as err:
            raise StoreLocationError(
                f"cannot write the blob {self.where(cid)}: {err}; check the object store's "
                "credentials and that the bucket exists") from err

    def _holds(self, key: str, buffers: list[bytes | memoryview]) -> bool:
        size = sum(memoryview(buffer).nbytes for buffer in buffers)
        try:
            if self.fs.size(key) != size:
                return False
            found = self.fs.cat_file(key)
        except FileNotFoundError:
            return False
        expected = xxhash.xxh3_128()
        for buffer in buffers:
            expected.update(memoryview(buffer).cast("B"))
        return xxhash.xxh3_128_digest(found) == expected.digest()

    @_over_the_network
    def get(self, cid: str) -> bytes:
        """The bytes under ``cid``; raises MissingBlobError if absent."""
        with self.open(cid) as handle:
            return handle.read()

    @_over_the_network
    def open(self, cid: str) -> BinaryIO:
        """The blob under ``cid`` opened for reading."""
        key = self._key(cid)
        self.fs.invalidate_cache(key)  # another process may have replaced or removed it
        try:
            handle: BinaryIO = self.fs.open(key, "rb")
        except FileNotFoundError:
            raise MissingBlobError(
                f"the value {cid} is recorded as a blob at {self.where(cid)}, but the object is gone; "
                "restore it in the object store (or drop the calls that use it)") from None
        return handle

    @_over_the_network
    def check_size(self, cid: str, handle: BinaryIO, size_bytes: int) -> None:
        """Raise MissingBlobError if the open blob does not hold the ``size_bytes`` stored for it."""
        found = getattr(handle, "size", None)
        if found is None:
            found = self.fs.size(self._key(cid))
        if found != size_bytes:
            raise MissingBlobError(
                f"the blob of value {cid} at {self.where(cid)} holds {found} bytes, but {size_bytes} were "
                "stored: it is damaged; drop the calls that use it with storage.drop_calls and run them again")

    @_over_the_network
    def exists(self, cids: Sequence[str]) -> set[str]:
        """The cids among ``cids`` that are stored (asked of the object store, not of a cached listing)."""
        self.fs.invalidate_cache()
        return {cid for cid in cids if is_content_id(cid) and self.fs.exists(self._key(cid))}

    def _objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every object under the blob prefix named ``<2 hex>/<cid>``, with its details."""
        try:
            with _reaching(self.url):
                self.fs.invalidate_cache()
                found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return
        for path, info in sorted(found.items()):
            folder, _, name = path.rpartition("/")
            if is_content_id(name) and folder.endswith("/" + name[:2]):
                yield name, info

    @_over_the_network
    def reclaim(self, stored: set[str], older_than_s: float) -> tuple[int, int]:
        """Remove the objects older than ``older_than_s`` that no stored value names; returns (objects, bytes).

        Younger objects may belong to a flush not yet committed.
        """
        cutoff = time.time() - older_than_s
        removed = freed = 0
        for cid, info in list(self._objects()):
            if cid in stored or _modified(info) > cutoff:
                continue
            try:
                self.fs.rm_file(self._key(cid))
            except FileNotFoundError:
                continue
            removed, freed = removed + 1, freed + int(info.get("size") or 0)
        return removed, freed

    @_over_the_network
    def delete(self, cids: Iterable[str]) -> int:
        """Remove these blobs (absent ones and ids that are not content ids are skipped); returns bytes freed."""
        freed = 0
        for cid in cids:
            if not is_content_id(cid):
                continue
            key = self._key(cid)
            try:
                size = self.fs.size(key)
                self.fs.rm_file(key)
            except FileNotFoundError:
                continue
            freed += int(size or 0)
        return freed

    def stored_files(self) -> Iterator[tuple[str, int]]:
        """Every blob object as (cid, size in bytes)."""
        for cid, info in self._objects():
            yield cid, int(info.get("size") or 0)


def _modified(info: dict[str, Any]) -> float:
    """When an object was last written, as a Unix time (fsspec backends name it differently)."""
    for key in ("LastModified", "mtime", "last_modified", "created"):
        stamp = info.get(key)
        if isinstance(stamp, datetime):
            return stamp.timestamp()
        if isinstance(stamp, (int, float)):
            return float(stamp)
    return 0.0
