"""Refs, Calls, and the formulas for their ids.

Identity is written down once, here:

==================  =========================================================
id                  xxh3-128 of
==================  =========================================================
value cid           the value's canonical encoding (``hashing.content_id``)
input ref hid       ``("value", cid)``: a value passed in by hand has no past
output ref hid      ``("output", call hid, output name)``
call hid            ``("call", op name, op version, sorted (arg, input hid))``
call cid            ``("call", op name, op version, sorted (arg, input cid))``
==================  =========================================================

So a call's history id says which calls produced its inputs, and its content
id says only what the inputs are: two calls with equal cids compute the same
thing, whatever path led to their inputs. Arguments left out of the identity
(``ignore``, a ``NewArgDefault`` at its default) appear in neither.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Literal, NamedTuple

from memostore.errors import OpDefinitionError, RefNotLoadedError, RefUsedAsValueError
from memostore.hashing import register_digest, tagged_digest
from memostore.not_a_value import HID_PREVIEW_CHARS, NotAValue, misuse_message
from memostore.notebook import call_html, ref_html

CallStatus = Literal["ok", "failed"]
_UNSET: Any = object()


def _join(parts: Iterable[str]) -> bytes:
    return "\x00".join(parts).encode()


def input_ref_hid(value_cid: str) -> str:
    """The history id of a value that no call produced."""
    return tagged_digest(b"value", value_cid.encode()).hex()


def output_ref_hid(call_hid: str, output_name: str) -> str:
    """The history id of output ``output_name`` of call ``call_hid``."""
    return tagged_digest(b"output", _join((call_hid, output_name))).hex()


def call_id(op_name: str, version: str, input_ids: Iterable[tuple[str, str]]) -> str:
    """A call's hid (given input hids) or cid (given input cids).

    ``input_ids`` are ``(argument name, id)`` pairs; their order does not matter.

    >>> call_id("f", "1", [("a", "x"), ("b", "y")]) == call_id("f", "1", [("b", "y"), ("a", "x")])
    True
    """
    flat = [op_name, version]
    for name, ident in sorted(input_ids):
        flat += (name, ident)
    return _call_digest(flat)


def call_ids(op_name: str, version: str, inputs: dict[str, Ref]) -> tuple[str, str]:
    """The (hid, cid) of a call of this op version on these identity inputs (Refs by argument name):
    ``call_id`` of each, in one pass (argument names are unique, so sorting them sorts the pairs).

    >>> refs = {"b": Ref("c1", "h1"), "a": Ref("c2", "h2")}
    >>> call_ids("f", "1", refs) == (call_id("f", "1", [("b", "h1"), ("a", "h2")]),
    ...                              call_id("f", "1", [("b", "c1"), ("a", "c2")]))
    True
    """
    by_hid = [op_name, version]
    by_cid = [op_name, version]
    for name in sorted(inputs):
        ref = inputs[name]
        by_hid += (name, ref.hid)
        by_cid += (name, ref.cid)
    return _call_digest(by_hid), _call_digest(by_cid)


def _call_digest(flat: list[str]) -> str:
    """The id of a call from its op name, version and sorted (argument name, input id) pairs, flattened."""
    return tagged_digest(b"call", _join(flat)).hex()


class CallIdentity(NamedTuple):
    """Who a call is: the op's stored name and version, the identity inputs
    (Refs by argument name), and the ids derived from them. Frozen, and
    passed whole along the call path instead of five loose values."""

    op: str
    version: str
    inputs: dict[str, Ref]
    hid: str
    cid: str


def call_identity(op_name: str, version: str, inputs: dict[str, Ref]) -> CallIdentity:
    """The identity of a call of this op version on these identity inputs.

    >>> key = call_identity("f", "1", {})
    >>> (key.op, key.hid == call_ids("f", "1", {})[0])
    ('f', True)
    """
    return CallIdentity(op_name, version, inputs, *call_ids(op_name, version, inputs))


class Ref(NotAValue):
    """A value with its identity: ``cid`` (content) and ``hid`` (history).

    A ref is in memory when it holds its value, lazy when only its ids are
    known (refs of stored calls start lazy); ``storage.unwrap`` loads it.
    Refs are mutable only in that respect, which is why this is not a frozen
    dataclass: attaching a value never changes the ids.

    >>> from memostore import Storage, op
    >>> @op
    ... def double(x):
    ...     return 2 * x
    >>> storage = Storage()
    >>> with storage:
    ...     y = double(1)
    >>> y
    Ref(2, hid=...)
    >>> storage.unwrap(y) + 1  # a Ref stands for the value; unwrap gives the value
    3
    >>> storage.load_ref(y.hid)  # a lazy ref, as stored calls give
    Ref(hid=..., in_memory=False)
    """

    __slots__ = ("cid", "hid", "_value")

    def __init__(self, cid: str, hid: str, value: Any = _UNSET) -> None:
        self.cid = cid
        self.hid = hid
        self._value = value

    @property
    def in_memory(self) -> bool:
        """Whether the value is loaded in this process.

        Not whether the call ran: a stored result that something unwrapped
        (a later call in the block that consumed it, say) is in memory too.
        ``storage.last_run`` and the ``.computed`` of ``storage.map``'s
        results say what ran.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> loaded.in_memory, lazy.in_memory
        (True, False)
        """
        return self._value is not _UNSET

    @property
    def value(self) -> Any:
        """The value; a lazy ref (from a frame or ``load_ref``) raises RefNotLoadedError, which says how to load it.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> loaded.value
        2
        >>> lazy.value
        Traceback (most recent call last):
        memostore.errors.RefNotLoadedError: Ref(hid=hhh...) is lazy: its value is not loaded in this process. ...
        """
        if self._value is _UNSET:
            raise RefNotLoadedError(
                f"Ref(hid={self.hid[:HID_PREVIEW_CHARS]}...) is lazy: its value is not loaded in this process. "
                "storage.unwrap(ref) returns the value; storage.attach(ref, inplace=True) loads it into this Ref "
                "(then ref.value works); inside `with storage:` the lazy Ref can be passed to ops as it is"
            )
        return self._value

    @property
    def obj(self) -> Any:
        """mandala's name of ``value``.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> loaded.obj
        2
        """
        return self.value

    def attached(self, value: Any) -> "Ref":
        """A copy of this ref holding ``value``.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> lazy.attached(2), lazy.in_memory
        (Ref(2, hid=hhh...), False)
        """
        return Ref(self.cid, self.hid, value)

    def attach_inplace(self, value: Any) -> None:
        """Hold ``value`` from now on.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> lazy.attach_inplace(2)
        >>> lazy
        Ref(2, hid=hhh...)
        """
        self._value = value

    def detach_inplace(self) -> None:
        """Forget the value (the next ``storage.unwrap`` loads the stored one): for a value changed in place.

        >>> from memostore import Ref
        >>> loaded = Ref("c" * 32, "h" * 32, 2)
        >>> loaded.detach_inplace()
        >>> loaded.in_memory
        False
        """
        self._value = _UNSET

    def detached(self) -> "Ref":
        """A lazy copy of this ref.

        >>> from memostore import Ref
        >>> lazy, loaded = Ref("c" * 32, "h" * 32), Ref("c" * 32, "h" * 32, 2)
        >>> loaded.detached(), loaded.in_memory
        (Ref(hid=hhh..., in_memory=False), True)
        """
        return Ref(self.cid, self.hid)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ref):
            return other.hid == self.hid
        # `ref == 0.76` or `ref == "text"` would always be False: a wrong answer, so say what was meant.
        raise RefUsedAsValueError(misuse_message(self, f"== with a value of type {type(other).__name__}")
                                  + " (two Refs compare by history id)")

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        # Not hash(hid): a Ref looked up among hid strings must not be compared with them.
        return hash((Ref, self.hid))

    def __format__(self, spec: str) -> str:
        if spec:
            raise RefUsedAsValueError(misuse_message(self, f"format {spec!r}"))
        return repr(self)

    def __repr__(self) -> str:
        short = self.hid[:HID_PREVIEW_CHARS]
        if self.in_memory:
            return f"Ref({self._value!r}, hid={short}...)"
        return f"Ref(hid={short}..., in_memory=False)"

    def _repr_html_(self) -> str:
        return ref_html(self)

    def __getstate__(self) -> tuple[Any, ...]:
        # A lazy ref travels as its ids only: the "not loaded" marker is this process's own object.
        return (self.cid, self.hid, self._value) if self.in_memory else (self.cid, self.hid)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.cid, self.hid = state[0], state[1]
        self._value = state[2] if len(state) == 3 else _UNSET


# A ref inside a container hashes as its content, without being loaded.
register_digest(Ref, lambda ref: bytes.fromhex(ref.cid))


class CallError(NamedTuple):
    """Why a call failed: the exception's type, message and formatted traceback."""

    type: str
    message: str
    traceback: str


ESCAPED_TEXT_PREFIX = "memostore-escaped-text:"


def storable_text(text: str) -> str:
    """``text`` as a database can store it: unchanged, unless it holds a NUL or a lone
    surrogate (a file name decoded by ``os.fsdecode``), which no UTF-8 column takes;
    then escaped as JSON behind a prefix, so ``original_text`` gives it back exactly.

    >>> stored = storable_text("data-\\udcff.csv")
    >>> stored
    'memostore-escaped-text:"data-\\\\udcff.csv"'
    >>> original_text(stored) == "data-\\udcff.csv"
    True
    """
    if "\x00" not in text and not text.startswith(ESCAPED_TEXT_PREFIX):
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return ESCAPED_TEXT_PREFIX + json.dumps(text)


def original_text(stored: str) -> str:
    """The text ``storable_text`` was given."""
    if stored.startswith(ESCAPED_TEXT_PREFIX):
        try:
            return str(json.loads(stored[len(ESCAPED_TEXT_PREFIX):]))
        except ValueError:
            pass  # an escaped type name cut to its column's width: shown as stored
    return stored


CALL_ROW_FIELDS = ("hid", "cid", "op", "version", "status", "multi_output", "started_at", "duration_s",
                   "error_type", "error_message", "error_traceback")


class Call:
    """One stored (or just computed) execution of an op.

    ``inputs`` and ``outputs`` map argument and output names to Refs.
    ``multi_output`` says whether the op returned a tuple of outputs. A failed
    call (stored by ``storage.map(..., on_error="record")``) has status
    ``"failed"``, no outputs, and its ``error``. Treat a Call as read-only. It is a slotted class rather than a frozen
    dataclass because frames build a million of them at a time, and a frozen
    dataclass's ``__init__`` is several times slower.

    >>> from memostore import Storage, op
    >>> @op
    ... def double(x):
    ...     return 2 * x
    >>> storage = Storage()
    >>> with storage:
    ...     y = double(1)
    >>> call = storage.get_ref_creator(y)
    >>> call
    Call(double, hid=...)
    >>> call.op, call.status, list(call.inputs), list(call.outputs)
    ('double', 'ok', ['x'], ['output_0'])
    """

    __slots__ = ("op", "version", "hid", "cid", "inputs", "outputs", "status", "multi_output",
                 "started_at", "duration_s", "error")

    def __init__(self, op: str, version: str, hid: str, cid: str, inputs: dict[str, Ref],
                 outputs: dict[str, Ref], status: CallStatus = "ok", multi_output: bool = False,
                 started_at: float = 0.0, duration_s: float = 0.0, error: CallError | None = None) -> None:
        self.op = op
        self.version = version
        self.hid = hid
        self.cid = cid
        self.inputs = inputs
        self.outputs = outputs
        self.status: CallStatus = status
        self.multi_output = multi_output
        self.started_at = started_at
        self.duration_s = duration_s
        self.error = error

    @classmethod
    def from_row(cls, row: tuple[Any, ...], inputs: dict[str, Ref], outputs: dict[str, Ref]) -> Call:
        """A Call from a stored call row (columns in ``CALL_ROW_FIELDS`` order) and its refs."""
        hid, cid, op, version, status, multi, started, duration, error_type, message, traceback = row
        error = None if error_type is None else CallError(
            original_text(error_type), original_text(message or ""), original_text(traceback or ""))
        return cls(op, version, hid, cid, inputs, outputs, "failed" if status == "failed" else "ok",
                   bool(multi), started, duration, error)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Call) and other.hid == self.hid

    def __hash__(self) -> int:
        return hash(self.hid)

    def __repr__(self) -> str:
        failed = ", failed" if self.status == "failed" else ""
        return f"Call({self.op}, hid={self.hid[:HID_PREVIEW_CHARS]}...{failed})"

    def _repr_html_(self) -> str:
        return call_html(self)

    def result(self) -> Ref | tuple[Ref, ...]:
        """The outputs as the op returned them: one Ref, or a tuple of Refs.

        >>> from memostore import Storage, op
        >>> @op(nout=2)
        ... def split(x):
        ...     return x // 10, x % 10
        >>> storage = Storage()
        >>> with storage:
        ...     tens, units = split(42)
        >>> storage.unwrap(storage.get_ref_creator(tens).result())
        (4, 2)
        """
        refs = tuple(self.outputs.values())
        if self.multi_output:
            return refs
        return refs[0]


class LazyCall(Call):
    """A Call of a batch of rows read at once, whose fields are built on first use from the batch's
    ``call(position)``: building every Call's Refs and dicts up front costs more than reading the rows.
    Pickling gives a plain Call."""

    __slots__ = ("_batch", "_position")
    _batch: Any  # has ``call(position) -> Call``
    _position: int

    def _fill(self, name: str) -> Any:
        """Copy every field of the batch's plain Call into this one; returns the field ``name``."""
        call = self._batch.call(self._position)
        for field in Call.__slots__:
            setattr(self, field, getattr(call, field))
        return getattr(call, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Call, tuple(getattr(self, field) for field in Call.__slots__))


def lazy_refs(obj: Any) -> list[Ref]:
    """The Refs in ``obj`` (through lists, tuples and dicts) whose value is not loaded."""
    found: list[Ref] = []
    map_refs(obj, lambda ref: found.append(ref) if not ref.in_memory else None)
    return found


def map_refs(obj: Any, on_ref: Any) -> Any:
    """``obj`` with each Ref replaced by ``on_ref(ref)``, through containers."""
    if isinstance(obj, Ref):
        return on_ref(obj)
    kind = type(obj)
    if kind is list:
        return [map_refs(item, on_ref) for item in obj]
    if kind is tuple:
        return tuple(map_refs(item, on_ref) for item in obj)
    if kind is dict:
        return {key: map_refs(value, on_ref) for key, value in obj.items()}
    if isinstance(obj, list):  # storage.map's result list, checked last: leaves are the common case
        return [map_refs(item, on_ref) for item in obj]
    return obj

# The longest op, argument or output name a call may have (what every store took before
# schema 2, so that a store stays readable by the releases that share it).
NAME_CHARS = 255


def storable_call(call: Call) -> Call:
    """``call`` with its error text escaped where a database could not store it
    (``model.storable_text``); raises OpDefinitionError for names that no store
    takes (too long, a NUL, a lone surrogate), so one bad call never fails the
    flush of the calls queued with it."""
    for name in (call.op, *call.inputs, *call.outputs):
        if len(name) > NAME_CHARS or "\x00" in name or not (name.isascii() or _is_utf8(name)):
            what = "op name" if name is call.op else \
                f"{'argument' if name in call.inputs else 'output'} name {name[:80]!r}"
            raise OpDefinitionError(
                f"op {call.op[:80]!r}: its {what} cannot be stored: names must be at most "
                f"{NAME_CHARS} characters of UTF-8 text without NUL; got {len(name)} characters; "
                "rename it (@op(name=...), output_names=..., or the argument)")
    if call.error is not None:
        # An exception's type name is for reading: cut to what its column holds, not refused.
        error = CallError(storable_text(call.error.type)[:NAME_CHARS], storable_text(call.error.message),
                          storable_text(call.error.traceback))
        if error != call.error:
            call = Call(call.op, call.version, call.hid, call.cid, call.inputs, call.outputs, call.status,
                        call.multi_output, call.started_at, call.duration_s, error)
    return call


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate
        return False
