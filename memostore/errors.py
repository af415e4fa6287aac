"""The exceptions memostore raises, under one root.

Every message names the op and the argument (or output) involved, what was
expected, what was got, and how to fix it. Where a builtin exception fits,
the class also subclasses it, so ``except TypeError`` keeps working::

    MemostoreError
    ├── UnhashableValueError (TypeError)
    │   ├── UnhashableInputError
    │   ├── UnhashableOutputError
    │   └── FileInputError
    ├── SerializationError (TypeError)
    ├── OpDefinitionError (TypeError)
    │   └── OpNameConflictError
    ├── RefUsedAsValueError (TypeError)
    ├── RefNotLoadedError (ValueError)
    ├── OutputMismatchError (ValueError)
    ├── ArgumentChangedError (ValueError)
    ├── OpFailedError
    ├── GraphvizMissingError (RuntimeError)
    ├── FigureFormatError (ValueError)
    ├── MissingExtraError (ImportError)
    ├── ReportWriteError (OSError)
    ├── RunError (ValueError)
    ├── UnknownNodeError (KeyError)
    ├── FrameArgumentError (ValueError, TypeError)
    ├── KeyCollisionError (RuntimeError)
    ├── StaleCodeError (RuntimeError)
    │   └── StaleWorkerError
    └── StorageError
        ├── StoreLocationError (OSError)
        ├── StorageOptionError (ValueError, TypeError)
        │   └── MapOptionError
        ├── SchemaVersionError
        ├── StorageFullError (OSError)
        ├── StoreUnavailableError (ConnectionError)
        ├── CorruptStoreError
        ├── MissingBlobError (FileNotFoundError)
        ├── UntrustedValueError
        ├── CorruptValueError
        └── NotStoredError (KeyError)
            ├── UnknownOpError
            ├── NewCallNotAllowedError (RuntimeError)
            ├── PointerNotStoredError
            └── UnknownRunError

and two warnings (UserWarnings): ``NotMemoizedWarning``, op calls that will
not be stored (an op sent to worker processes from an in-memory storage), and
``UntrackedValueWarning``, a global an op reads in ``deps_path`` that is
neither code nor data, so its version cannot cover it.
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


class FileInputError(UnhashableValueError):
    """A ``File`` argument names a file that cannot be read, so it has no content id."""


class SerializationError(MemostoreError, TypeError):
    """A value cannot be turned into bytes (or back) for storage."""


class OpDefinitionError(MemostoreError, TypeError):
    """An op is declared or called in a way memostore cannot honour."""


class OpNameConflictError(OpDefinitionError):
    """Two different functions (module and qualified name) claim one op name."""


class OpFailedError(MemostoreError):
    """An op raised in a worker of ``storage.map``, and its own exception could not be sent back
    (it does not unpickle here): the message carries its type, text and traceback instead."""


class RefUsedAsValueError(MemostoreError, TypeError):
    """A Ref was used where its value is meant: compared, added, tested, given
    to numpy (``np.array(ref)``, ``np.mean(ref)``), or passed to an op outside
    a ``with storage:`` block. ``storage.unwrap(ref)`` gives the value."""


class RefNotLoadedError(MemostoreError, ValueError):
    """``ref.value`` (or ``ref.obj``) of a lazy Ref, one whose value is in the store but not loaded
    (from a frame, ``load_ref``, ``storage.map``): ``storage.unwrap(ref)`` loads it."""


class OutputMismatchError(MemostoreError, ValueError):
    """An op returned a different number of outputs than it declared."""


class ArgumentChangedError(MemostoreError, ValueError):
    """An argument's value was changed in place, so it no longer matches its content id: by the op
    (which must copy it first) or by the caller after unwrapping it. The call is not stored."""


class GraphvizMissingError(MemostoreError, RuntimeError):
    """Drawing needs the graphviz package and Graphviz's ``dot`` program, and one is missing."""


class FigureFormatError(MemostoreError, ValueError):
    """``StoredFigure.save`` was given a file name whose format the stored figure does not have:
    it keeps a PNG and (usually) an SVG rendering, nothing else."""


class MissingExtraError(MemostoreError, ImportError):
    """An optional part of memostore needs a package that is not installed; the message names the extra."""


class ReportWriteError(MemostoreError, OSError):
    """``storage.report`` cannot write its HTML file, or ``cf.draw(path=...)`` its drawing: the folder
    cannot be created (a file has its name) or written (permissions), or the path is a folder."""


class RunError(MemostoreError, ValueError):
    """A run is asked for in a way runs cannot honour: a label or tags that
    are not text, or ``storage.run(...)`` inside a block that is already a run."""


class UnknownNodeError(MemostoreError, KeyError):
    """A ComputationFrame was given a node name (variable or op node) that it does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FrameArgumentError(MemostoreError, ValueError, TypeError):
    """A ComputationFrame method got an argument of the wrong kind or value (a ``by=`` it does not know,
    a source it cannot build from); a ValueError and a TypeError, as the builtins it replaced."""


class KeyCollisionError(MemostoreError, RuntimeError):
    """Two different stored ids share their first 64 bits, by which a frame keys them: the frame
    refuses rather than merge them (about one chance in a million at ten million calls)."""


class StaleCodeError(MemostoreError, RuntimeError):
    """This process runs code other than its source file holds (the file was edited after the module
    was imported): a version read from the file would describe code that does not run."""


class StaleWorkerError(StaleCodeError):
    """A worker process of ``storage.map`` runs a helper other than the one of the process that files
    its results (it imported the helper before it was edited)."""


class StorageError(MemostoreError):
    """The store cannot be opened, read or written as asked."""


class StoreLocationError(StorageError, OSError):
    """The db_path (or blob directory) cannot be created or written."""


class StorageOptionError(StorageError, ValueError, TypeError):
    """``Storage`` or one of its methods got an argument it cannot take, or two
    that contradict each other (an option and its mandala spelling, say); a
    ValueError and a TypeError, as the builtins it replaced."""


class MapOptionError(StorageOptionError):
    """``storage.map`` got an argument it cannot use: an unknown executor or on_error, an item
    that is not a dict of the op's keyword arguments, a chunksize below 1, or executor_options
    that are not Dask's or not for a Dask executor."""


class SchemaVersionError(StorageError):
    """The store was written by an incompatible version of memostore."""


class StorageFullError(StorageError, OSError):
    """The disk holding the store is full: nothing committed is lost, and the
    pending calls are written by the next commit once space is freed."""


class StoreUnavailableError(StorageError, ConnectionError):
    """The database server stayed unreachable for the storage's ``retry_s``: nothing
    committed is lost, and the pending calls are written by the next commit once it answers."""


class CorruptStoreError(StorageError):
    """The database file is damaged: the store cannot be trusted until checked."""


class MissingBlobError(StorageError, FileNotFoundError):
    """The metadata names a large value whose blob file is gone."""


class UntrustedValueError(StorageError):
    """Loading a value would unpickle it, which the storage forbids (``allow_pickle=False``).

    ``cid`` is the value's content id, when known; the message names it and,
    from a frame, the variable holding it and the op that made it.
    """

    def __init__(self, message: str, cid: str | None = None) -> None:
        super().__init__(message)
        self.cid = cid


class NotStoredError(StorageError, KeyError):
    """A ref or call id is not in the store."""

    def __str__(self) -> str:
        # KeyError's str() shows repr(arg) with quotes; show the message plainly.
        return str(self.args[0]) if self.args else ""


class CorruptValueError(StorageError):
    """A stored value's bytes are damaged: they do not decode, or not to its content id.

    ``cid`` is the damaged value's content id and ``call_hids`` the calls
    that produced it (or, for a value passed in by hand, that used it), when known.
    """

    def __init__(self, message: str, cid: str | None = None, call_hids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.cid = cid
        self.call_hids = call_hids


class UnknownOpError(NotStoredError):
    """An op name that no stored call uses, or a stored op not defined in this process."""


class UnknownRunError(NotStoredError):
    """A run id or label that no stored run has."""


class NotMemoizedWarning(UserWarning):
    """Op calls that will run but not be stored, and how to store them."""


class UntrackedValueWarning(UserWarning):
    """An op reads a global in ``deps_path`` that its version cannot cover (an open connection, a lock)."""


class NewCallNotAllowedError(NotStoredError, RuntimeError):
    """A call is not stored, and the storage does not allow new calls
    (``storage.allow_new_calls(False)``): it was not run.

    ``op`` is the op's name and ``arguments`` the call's arguments by name.
    """

    def __init__(self, message: str, op: str = "", arguments: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.arguments = arguments or {}


class PointerNotStoredError(NotStoredError):
    """The object behind a ``ValuePointer`` was asked of one loaded from the store,
    which keeps only the pointer's name."""
