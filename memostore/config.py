"""A storage's configuration: what it pickles to, and how its paths are fixed when it is made."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from memostore.errors import StoreLocationError

DEFAULT_BLOB_THRESHOLD_BYTES = 2**20
DEFAULT_CLAIM_TTL_S = 60.0
ORPHAN_FILE_GRACE_S = 3600.0  # a blob file no value names is removed once this old
BLOB_DIR_SUFFIX = "-blobs"


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """Everything needed to reopen a storage: what a Storage pickles to."""

    db_path: str | None = None
    db_url: str | None = None
    blob_dir: str | None = None
    blob_threshold_bytes: int = DEFAULT_BLOB_THRESHOLD_BYTES
    allow_pickle: bool = True
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S
    deps_path: tuple[str, ...] | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the metadata store."""
        if self.db_url is not None:
            return self.db_url
        if self.db_path is not None:
            return "sqlite:///" + str(Path(self.db_path).resolve())
        return "sqlite://"

    @property
    def blob_root(self) -> str | None:
        """The blob directory: given, or beside the db file; None in memory."""
        if self.blob_dir is not None:
            return self.blob_dir
        if self.db_path is not None:
            return str(self.db_path) + BLOB_DIR_SUFFIX
        return None


def is_object_url(location: str) -> bool:
    """Whether ``location`` names an object store (``s3://...``), not a local folder (a path or ``file://``).

    >>> is_object_url("s3://bucket/blobs"), is_object_url("/data/blobs"), is_object_url("file:///data")
    (True, False, False)
    """
    scheme, separator, _ = location.partition("://")
    return bool(separator) and scheme.isidentifier() and scheme not in ("file", "local")


def resolved_path(path: str | os.PathLike[str] | None) -> str | None:
    """``path`` made absolute with symlinks followed, once, when the storage is made:
    a later ``os.chdir`` or a symlink must not move the store (or its blobs) for
    this process or for the workers it sends the configuration to."""
    if path is None:
        return None
    location = os.fspath(path)
    if is_object_url(location):  # an object store URL is no path of this machine
        return location
    return str(Path(location.removeprefix("file://")).resolve())


def check_writable_dir(directory: Path, db_path: str) -> None:
    if not directory.is_dir():
        raise StoreLocationError(
            f"cannot create the store db_path={db_path!r}: the directory {str(directory)!r} "
            "does not exist; create it first or choose another path"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreLocationError(
            f"cannot write the store db_path={db_path!r}: the directory {str(directory)!r} "
            "is not writable; fix its permissions or choose another path"
        )
