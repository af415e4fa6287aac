"""The exceptions memostore raises, under one root.

Every message names the op and the argument (or output) involved, what was
expected, what was got, and how to fix it. Where a builtin exception fits,
the class also subclasses it, so ``except TypeError`` keeps working::

    MemostoreError
    ├── UnhashableValueError (TypeError)
    │   ├── UnhashableInputError
    │   └── UnhashableOutputError
    ├── SerializationError (TypeError)
    ├── OpDefinitionError (TypeError)
    │   └── OpNameConflictError
    ├── RefUsedAsValueError (TypeError)
    ├── OutputMismatchError (ValueError)
    └── StorageError
        ├── StoreLocationError (OSError)
        ├── SchemaVersionError
        ├── MissingBlobError (FileNotFoundError)
        ├── UntrustedValueError
        └── NotStoredError (KeyError)
            └── UnknownOpError

and one warning, ``NotMemoizedWarning`` (a UserWarning): op calls that will
not be stored (an op sent to worker processes from an in-memory storage).
"""

from __future__ import annotations


class MemostoreError(Exception):
    """Root of every error memostore raises on purpose."""


class UnhashableValueError(MemostoreError, TypeError):
    """A value has no content id: a generator, an open file, a lock, ..."""


class UnhashableInputError(UnhashableValueError):
    """An argument of an op call cannot be content-hashed."""


class UnhashableOutputError(UnhashableValueError):
    """A value returned by an op cannot be content-hashed."""


class SerializationError(MemostoreError, TypeError):
    """A value cannot be turned into bytes (or back) for storage."""


class OpDefinitionError(MemostoreError, TypeError):
    """An op is declared or called in a way memostore cannot honour."""


class OpNameConflictError(OpDefinitionError):
    """Two different functions (module and qualified name) claim one op name."""


class RefUsedAsValueError(MemostoreError, TypeError):
    """A Ref was used where its value is meant: compared, added, tested, or
    passed to an op outside a ``with storage:`` block."""


class OutputMismatchError(MemostoreError, ValueError):
    """An op returned a different number of outputs than it declared."""


class StorageError(MemostoreError):
    """The store cannot be opened, read or written as asked."""


class StoreLocationError(StorageError, OSError):
    """The db_path (or blob directory) cannot be created or written."""


class SchemaVersionError(StorageError):
    """The store was written by an incompatible version of memostore."""


class MissingBlobError(StorageError, FileNotFoundError):
    """The metadata names a large value whose blob file is gone."""


class UntrustedValueError(StorageError):
    """Loading this value would unpickle it, which the storage forbids."""


class NotStoredError(StorageError, KeyError):
    """A ref or call id is not in the store."""

    def __str__(self) -> str:
        # KeyError's str() shows repr(arg) with quotes; show the message plainly.
        return str(self.args[0]) if self.args else ""


class UnknownOpError(NotStoredError):
    """An op name that no stored call uses, or a stored op not defined in this process."""


class NotMemoizedWarning(UserWarning):
    """Op calls that will run but not be stored, and how to store them."""
