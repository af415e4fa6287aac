"""``File``: a file on disk as an op's argument or output, identified by its bytes.

A path string as an argument says nothing about what the file holds: edit
the CSV and a memoized op would still return its old result. ``File(path)``
makes the file's *content* (and its file name, which an op can read) the
argument's identity, so "the CSV changed" recomputes, and moving the data
folder does not. An op may also return a ``File`` (a plot it saved, an
exported model): the store keeps its bytes, once per content, so the file
has a call behind it and can be restored on any machine that reads the store.

A ``File`` loaded from the store is written, once per content, under
``files_dir()`` (``$MEMOSTORE_FILES_DIR``, or a folder in the system's
temporary directory), with its original file name.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
from pathlib import Path
from stat import S_ISLNK, S_ISREG

import xxhash

from memostore.errors import CorruptValueError, FileInputError
from memostore.hashing import register_digest, tagged_digest
from memostore.serialization import register_serializer

FILES_DIR_VARIABLE = "MEMOSTORE_FILES_DIR"
SERIALIZER_NAME = "memostore.File"
_HEADER_LENGTH = struct.Struct("<I")
_MAX_HEADER_BYTES = 4096
_CHUNK_BYTES = 1 << 22  # files are hashed in 4 MiB chunks, never read whole for hashing
_RACY_WINDOW_NS = 2_000_000_000  # a file changed this recently is hashed again at its next use


class File(os.PathLike):  # type: ignore[type-arg]
    """A file whose content and name, not its path, identify it in op calls.

    Use it wherever a path would go: it is ``os.PathLike`` (``open(f)``,
    ``pd.read_csv(f)``), and ``f.path``, ``f.name``, ``f.read_bytes()`` work.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "data.csv").write_text("a,b\\n1,2\\n")
    8
    >>> File(folder / "data.csv").name
    'data.csv'
    """

    __slots__ = ("path", "_digest", "_stamp")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.fspath(path)).absolute()
        self._digest: bytes | None = None
        self._stamp: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        """The file's name, without its folder.

        >>> import pathlib, tempfile
        >>> from memostore import File
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv"
        >>> _ = path.write_text("a,b\\n1,2\\n")
        >>> File(path).name
        'data.csv'
        """
        return self.path.name

    def __fspath__(self) -> str:
        return str(self.path)

    def read_bytes(self) -> bytes:
        """The file's bytes.

        >>> import pathlib, tempfile
        >>> from memostore import File
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv"
        >>> _ = path.write_text("a,b\\n1,2\\n")
        >>> File(path).read_bytes()
        b'a,b\\n1,2\\n'
        """
        return self.path.read_bytes()

    def content_digest(self) -> bytes:
        """The xxh3-128 digest of the file's bytes, recomputed whenever the file may have changed
        (its size, mtime, ctime or inode: a write that keeps size and mtime still moves ctime).

        >>> import pathlib, tempfile
        >>> from memostore import File
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv"
        >>> _ = path.write_text("a,b\\n1,2\\n")
        >>> before = File(path).content_digest()
        >>> len(before), File(path).content_digest() == before
        (16, True)
        >>> _ = path.write_text("a,b\\n1,3\\n")
        >>> File(path).content_digest() == before
        False
        """
        try:
            stat = self.path.stat()
        except OSError as err:
            raise FileInputError(f"File({str(self.path)!r}) cannot be read: {err.strerror}; "
                                 "check the path, or create the file before the call") from None
        if not S_ISREG(stat.st_mode):
            raise FileInputError(f"File({str(self.path)!r}) is not a regular file (a directory?); "
                                 "File names one file")
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
        if self._digest is None or stamp != self._stamp:
            hasher = xxhash.xxh3_128()
            with self.path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
                    hasher.update(chunk)
            # A file changed within the last moments may change again under the same stamp: kernels before
            # Linux 6.13 move ctime in steps of a few milliseconds, some filesystems mtime in steps of 2 s.
            # Such a digest is used once and not kept (git's "racily clean" rule).
            racy = time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < _RACY_WINDOW_NS
            self._digest, self._stamp = hasher.digest(), None if racy else stamp
        return self._digest

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, File) and self.name == other.name
                and self.content_digest() == other.content_digest())

    def __hash__(self) -> int:
        return hash((self.name, self.content_digest()))

    def __repr__(self) -> str:
        return f"File({str(self.path)!r})"


def files_dir() -> Path:
    """Where files loaded from a store are written: ``$MEMOSTORE_FILES_DIR`` or a temporary folder."""
    configured = os.environ.get(FILES_DIR_VARIABLE)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"memostore-files-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _private_dir(folder: Path) -> Path:
    """``folder``, made if missing (readable by this user only), refused if another user owns it or it
    is a link: in a shared temporary directory, someone else could plant links in it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if S_ISLNK(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise FileInputError(f"{str(folder)!r} is a link or belongs to another user: memostore will not write "
                             f"restored files there; set ${FILES_DIR_VARIABLE} to a folder of your own")
    return folder


def freeze(file: File) -> File:
    """A File at a copy of ``file`` kept under ``files_dir()``: what an op returns must not change
    when the op (or anyone) later writes to the path it returned."""
    return _materialize(file.name, file.read_bytes())


def _materialize(name: str, content: bytes) -> File:
    """A File named ``name`` holding ``content``, written under ``files_dir()`` once per content."""
    digest = xxhash.xxh3_128_digest(content).hex()
    folder = _private_dir(files_dir())
    target = folder / digest / name
    if not (target.is_file() and not target.is_symlink()
            and xxhash.xxh3_128_digest(target.read_bytes()).hex() == digest):
        _private_dir(target.parent)
        handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")  # unique, never followed
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(partial, target)
    return File(target)


def _digest_file(file: File) -> bytes:
    return tagged_digest(b"file", file.name.encode("utf-8", "surrogatepass") + b"\x00" + file.content_digest())


def _dump_file(file: File) -> bytes:
    header = json.dumps({"name": file.name}).encode()
    return _HEADER_LENGTH.pack(len(header)) + header + file.read_bytes()


def _load_file(data: bytes) -> File:
    """A File restored from stored bytes, written under ``files_dir()`` once per content."""
    name, content = _parse(data)
    return _materialize(name, content)


def _parse(data: bytes) -> tuple[str, bytes]:
    """The name and content in a stored File; refuses a header an untrusted store could abuse."""
    try:
        (length,) = _HEADER_LENGTH.unpack_from(data)
        if length > _MAX_HEADER_BYTES:
            raise ValueError(f"a header of {length} bytes")
        name = json.loads(data[_HEADER_LENGTH.size:_HEADER_LENGTH.size + length])["name"]
    except (struct.error, ValueError, KeyError, TypeError) as err:
        raise CorruptValueError(f"a stored File is damaged: {err}") from None
    # The name comes from the store: it must stay a plain file name inside files_dir().
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise CorruptValueError(f"a stored File has the name {name!r}, which is not a plain file name")
    return name, data[_HEADER_LENGTH.size + length:]


def stored_file_cid(payload: bytes) -> str:
    """The content id of the File that stored bytes (without their checksum) hold, computed from the
    bytes, without writing the file out: the checksum stored with them catches damage, this a forger."""
    name, content = _parse(payload)
    return tagged_digest(b"file", name.encode("utf-8", "surrogatepass") + b"\x00"
                         + xxhash.xxh3_128_digest(content)).hex()


def _register() -> None:
    register_digest(File, _digest_file)
    register_serializer(File, SERIALIZER_NAME, _dump_file, _load_file)


_register()

