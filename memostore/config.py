"""A storage's configuration: what it pickles to, and how its paths are fixed when it is made."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

from memostore.errors import StorageOptionError, StoreLocationError

DEFAULT_BLOB_THRESHOLD_BYTES = 2**20
DEFAULT_CLAIM_TTL_S = 60.0
DEFAULT_RETRY_S = 30.0  # how long a call waits for a database server that went away
DEFAULT_IDLE_CLOSE_S = 60.0  # a server connection unused this long is closed (reopened on the next use)
ORPHAN_FILE_GRACE_S = 3600.0  # a blob file no value names is removed once this old
BLOB_DIR_SUFFIX = "-blobs"


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """Everything needed to reopen a storage: what a Storage pickles to.

    ``retry_s`` and ``idle_close_s`` apply to a server store (``db_url``): how
    long a lookup or commit keeps reconnecting to a server that went away
    before it raises StoreUnavailableError, and after how long unused a
    connection is given back to the server. Its repr hides the password.
    """

    db_path: str | None = None
    db_url: str | None = None
    blob_dir: str | None = None
    blob_threshold_bytes: int = DEFAULT_BLOB_THRESHOLD_BYTES
    allow_pickle: bool = True
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S
    deps_path: tuple[str, ...] | None = None
    allow_new_calls: bool = True  # False: a call not stored raises instead of running (see modes)
    retry_s: float = DEFAULT_RETRY_S
    idle_close_s: float = DEFAULT_IDLE_CLOSE_S

    def __repr__(self) -> str:
        shown = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if self.db_url is not None:
            shown["db_url"] = hidden_password(self.db_url)
        return "StorageConfig(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the metadata store."""
        if self.db_url is not None:
            return self.db_url
        if self.db_path is not None:
            return "sqlite:///" + str(Path(self.db_path).resolve())
        return "sqlite://"

    @property
    def location(self) -> str:
        """Where the store is, for messages: ``db_path='...'``, ``db_url='...'`` (no password) or ``in memory``."""
        if self.db_path is not None:
            return f"db_path={self.db_path!r}"
        return "in memory" if self.db_url is None else f"db_url={hidden_password(self.db_url)!r}"

    @property
    def blob_root(self) -> str | None:
        """The blob directory: given, or beside the db file; None in memory."""
        if self.blob_dir is not None:
            return self.blob_dir
        if self.db_path is not None:
            return str(self.db_path) + BLOB_DIR_SUFFIX
        return None


def hidden_password(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show none of it rather than a password
        return "<db_url not shown: not a database URL>"


def is_object_url(location: str) -> bool:
    """Whether ``location`` names an object store (``s3://...``), not a local folder (a path or ``file://``).

    >>> is_object_url("s3://bucket/blobs"), is_object_url("/data/blobs"), is_object_url("file:///data")
    (True, False, False)
    """
    scheme, separator, _ = location.partition("://")
    return bool(separator) and scheme.isidentifier() and scheme not in ("file", "local")


def check_path_options(**options: object) -> None:
    """Refuse a location option that is not text or a path (``db_path=5``), naming it, before ``os.fspath``
    raises a bare TypeError; ``db_url`` must be text."""
    for name, value in options.items():
        kinds = (str,) if name == "db_url" else (str, os.PathLike)
        if value is not None and not isinstance(value, kinds):
            expected = "a URL string" if name == "db_url" else "a path (a str or pathlib.Path)"
            raise StorageOptionError(f"Storage({name}=...) takes {expected}, got {type(value).__name__} "
                                     f"{value!r}; write e.g. {name}={_EXAMPLES[name]!r}")


_EXAMPLES = {"db_path": "runs.db", "db_url": "postgresql://user@host/db", "blob_dir": "runs-blobs",
             "overflow_dir": "runs-blobs"}


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


def blob_options(blob_dir: str | os.PathLike[str] | None, blob_threshold_bytes: int | None,
                 overflow_dir: str | os.PathLike[str] | None,
                 overflow_threshold_MB: float | None) -> tuple[str | os.PathLike[str] | None, int]:
    """``(blob_dir, blob_threshold_bytes)`` from memostore's names or mandala's
    (``overflow_dir``, ``overflow_threshold_MB`` in MiB); giving both spellings of one is refused."""
    for ours, value, theirs, other in (("blob_dir", blob_dir, "overflow_dir", overflow_dir),
                                       ("blob_threshold_bytes", blob_threshold_bytes,
                                        "overflow_threshold_MB", overflow_threshold_MB)):
        if value is not None and other is not None:
            raise StorageOptionError(f"Storage got {ours}={value!r} and {theirs}={other!r}, two names of one "
                                     f"option; give only {ours}")
    if overflow_threshold_MB is not None:
        blob_threshold_bytes = int(overflow_threshold_MB * 2**20)
    return (overflow_dir if blob_dir is None else blob_dir,
            DEFAULT_BLOB_THRESHOLD_BYTES if blob_threshold_bytes is None else blob_threshold_bytes)


def deps_roots(deps_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> tuple[str, ...] | None:
    """``deps_path`` as a tuple of strings: one name or path (a ``pathlib.Path`` too), or several."""
    if deps_path is None:
        return None
    if isinstance(deps_path, (str, os.PathLike)):
        return (os.fspath(deps_path),)
    return tuple(os.fspath(item) for item in deps_path)


def check_store_path(db_path: str) -> None:
    """Refuse a ``db_path`` that cannot be a store file: a folder, or a file in a folder that is missing
    or not writable (SQLite would only say it is "unable to open database file")."""
    path = Path(db_path)
    if path.is_dir():
        raise StoreLocationError(f"cannot open the store db_path={db_path!r}: it is a folder, not a store file; "
                                 f"give the path of the store's .db file in it, e.g. {str(path / 'runs.db')!r}")
    check_writable_dir(path.resolve().parent, f"the store db_path={db_path!r}")


def check_writable_dir(directory: Path, subject: str) -> None:
    """Refuse to create ``subject`` (e.g. "the store db_path='runs.db'") in a folder missing or not writable."""
    if not directory.is_dir():
        raise StoreLocationError(
            f"cannot create {subject}: the directory {str(directory)!r} "
            "does not exist; create it first or choose another path"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreLocationError(
            f"cannot write {subject}: the directory {str(directory)!r} "
            "is not writable; fix its permissions or choose another path"
        )
