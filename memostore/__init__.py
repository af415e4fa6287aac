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
from memostore.collections import CollectionRef, MDict, MList, MSet, MTuple
from memostore.deps import track
from memostore.errors import (
    ArgumentChangedError,
    CorruptStoreError,
    CorruptValueError,
    FigureFormatError,
    FileInputError,
    FrameArgumentError,
    GraphvizMissingError,
    KeyCollisionError,
    MapOptionError,
    MemostoreError,
    MissingBlobError,
    MissingExtraError,
    NewCallNotAllowedError,
    NotMemoizedWarning,
    NotStoredError,
    OpDefinitionError,
    OpFailedError,
    OpNameConflictError,
    OutputMismatchError,
    PointerNotStoredError,
    RefNotLoadedError,
    RefUsedAsValueError,
    ReportWriteError,
    RunError,
    SchemaVersionError,
    SerializationError,
    StaleCodeError,
    StaleWorkerError,
    StorageError,
    StorageFullError,
    StorageOptionError,
    StoreLocationError,
    StoreUnavailableError,
    UnhashableInputError,
    UnhashableOutputError,
    UnhashableValueError,
    UnknownNodeError,
    UnknownOpError,
    UnknownRunError,
    UntrackedValueWarning,
    UntrustedValueError,
)
from memostore.figures import StoredFigure
from memostore.files import File
from memostore.hashing import content_id, register_hasher
from memostore.model import Call, Ref
from memostore.op import NewArgDefault, Op, op
from memostore.pointers import Ignore, ValuePointer
from memostore.serialization import register_serializer
from memostore.storage import Storage, upgrade_store

__version__ = "0.2.0"

__all__ = [
    "ArgumentChangedError",
    "Call",
    "CheckReport",
    "CollectionRef",
    "ComputationFrame",
    "CorruptStoreError",
    "CorruptValueError",
    "FigureFormatError",
    "File",
    "FileInputError",
    "FrameArgumentError",
    "GraphvizMissingError",
    "Ignore",
    "KeyCollisionError",
    "MDict",
    "MList",
    "MSet",
    "MTuple",
    "MapOptionError",
    "MemostoreError",
    "MissingBlobError",
    "MissingExtraError",
    "NewArgDefault",
    "NewCallNotAllowedError",
    "NotMemoizedWarning",
    "NotStoredError",
    "Op",
    "OpDefinitionError",
    "OpFailedError",
    "OpNameConflictError",
    "OutputMismatchError",
    "PointerNotStoredError",
    "Ref",
    "RefNotLoadedError",
    "RefUsedAsValueError",
    "ReportWriteError",
    "RunError",
    "SchemaVersionError",
    "SerializationError",
    "StaleCodeError",
    "StaleWorkerError",
    "Storage",
    "StorageError",
    "StorageFullError",
    "StorageOptionError",
    "StoreLocationError",
    "StoreUnavailableError",
    "StoredFigure",
    "UnhashableInputError",
    "UnhashableOutputError",
    "UnhashableValueError",
    "UnknownNodeError",
    "UnknownOpError",
    "UnknownRunError",
    "UntrackedValueWarning",
    "UntrustedValueError",
    "ValuePointer",
    "content_id",
    "op",
    "register_hasher",
    "register_serializer",
    "track",
    "upgrade_store",
]
