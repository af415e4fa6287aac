"""memostore: every call of an ``@op`` function becomes a durable, queryable record.

>>> from memostore import op, Storage
>>> @op
... def square(x):
...     return x * x
>>> storage = Storage()
>>> with storage:
...     y = square(3)
>>> storage.unwrap(y)
9
"""

from memostore.cf import ComputationFrame
from memostore.checking import CheckReport
from memostore.deps import track
from memostore.errors import (
    CorruptStoreError,
    CorruptValueError,
    FileInputError,
    GraphvizMissingError,
    MapOptionError,
    MemostoreError,
    MissingBlobError,
    NotMemoizedWarning,
    NotStoredError,
    OpDefinitionError,
    OpNameConflictError,
    OutputMismatchError,
    RefUsedAsValueError,
    SchemaVersionError,
    SerializationError,
    StorageError,
    StorageFullError,
    StoreLocationError,
    UnhashableInputError,
    UnhashableOutputError,
    UnhashableValueError,
    UnknownOpError,
    UntrustedValueError,
)
from memostore.files import File
from memostore.hashing import content_id, register_hasher
from memostore.model import Call, Ref
from memostore.op import NewArgDefault, Op, op
from memostore.serialization import register_serializer
from memostore.storage import Storage, upgrade_store

__version__ = "0.2.0"

__all__ = [
    "Call",
    "CheckReport",
    "ComputationFrame",
    "CorruptStoreError",
    "CorruptValueError",
    "File",
    "FileInputError",
    "GraphvizMissingError",
    "MapOptionError",
    "MemostoreError",
    "MissingBlobError",
    "NewArgDefault",
    "NotMemoizedWarning",
    "NotStoredError",
    "Op",
    "OpDefinitionError",
    "OpNameConflictError",
    "OutputMismatchError",
    "Ref",
    "RefUsedAsValueError",
    "SchemaVersionError",
    "SerializationError",
    "Storage",
    "StorageError",
    "StorageFullError",
    "StoreLocationError",
    "UnhashableInputError",
    "UnhashableOutputError",
    "UnhashableValueError",
    "UnknownOpError",
    "UntrustedValueError",
    "content_id",
    "op",
    "register_hasher",
    "register_serializer",
    "track",
    "upgrade_store",
]
