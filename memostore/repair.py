"""Serving a value whose stored bytes turned out damaged or missing: recompute it and repair the store.

A load that fails verification (``CorruptValueError``) or finds its bytes
gone (``MissingBlobError``, ``NotStoredError``) does not give up when the
call that produced the value belongs to an op defined in this process: that
call runs again on its stored inputs, and if the recomputed value has the
stored content id (content addressing makes that check exact) it is
returned and written over the damaged row or blob file. Otherwise the
original error is raised, saying why the value could not be recomputed.
Nothing here runs on a healthy load: hits stay as fast as they were.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import TYPE_CHECKING, Any, Iterable

from memostore.callpath import inside_op
from memostore.errors import CorruptValueError, MissingBlobError, NotStoredError, StorageError
from memostore.files import File, freeze
from memostore.hashing import content_id
from memostore.model import Call, Ref
from memostore.versioning import current_ops, live_ops

if TYPE_CHECKING:
    from memostore.opened import OpenedStore

logger = logging.getLogger(__name__)

# The values being recomputed in this context: one needed to recompute itself cannot be.
_repairing: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("memostore_repairing",
                                                                            default=frozenset())


class _CannotRepair(Exception):
    """Why a value cannot be recomputed here (turned into the load's own error)."""


def repair_values(opened: OpenedStore, refs: Iterable[Ref], problems: dict[str, StorageError]) -> dict[str, Any]:
    """cid -> value for every ref whose value ``problems`` says cannot be served as stored,
    recomputed and written back; raises the load's error (with the reason) for the first that cannot be."""
    opened.commit()  # a hit found by content records its own history: its call must be stored to be found
    by_cid: dict[str, list[Ref]] = {}
    for ref in refs:
        if ref.cid in problems:
            by_cid.setdefault(ref.cid, []).append(ref)
    repaired: dict[str, Any] = {}
    for cid, same_value in by_cid.items():
        why = ""
        for ref in same_value:  # refs of one value may have different histories: any call that made it will do
            if cid in repaired:
                break
            try:
                repaired.update(_recompute(opened, ref, problems))
            except _CannotRepair as reason:
                why = str(reason)
        if cid not in repaired:
            raise _unrepaired(problems[cid], why)
    return repaired


def _recompute(opened: OpenedStore, ref: Ref, problems: dict[str, StorageError]) -> dict[str, Any]:
    """The damaged values among the outputs of the call that produced ``ref``, recomputed and stored again."""
    if ref.cid in _repairing.get():
        raise _CannotRepair("recomputing it needs the value itself")
    calls = opened._store.calls_of_refs([ref.hid], "out")
    if not calls and not opened._store.ref_cids([ref.hid]):
        raise _CannotRepair(f"this store ({opened.config.location}) has no ref with hid {ref.hid}: the Ref comes "
                            "from a different store (unwrap it with the storage that made it), or its call was "
                            "dropped and cleanup_refs removed it")
    if not calls:
        raise _CannotRepair("no stored call produced it (a value passed in by hand, or its call was dropped)")
    call = calls[0]
    outputs = _run_again(opened, call, ref.cid)
    repaired = {}
    for name, stored in call.outputs.items():
        if stored.cid not in problems or name not in outputs:
            continue
        value = outputs[name]
        if content_id(value) != stored.cid:
            if stored.cid != ref.cid:
                continue  # another damaged output: its own load says so
            raise _CannotRepair(f"op {call.op!r} (call {call.hid}) recomputed it as a value with another content "
                                "id: its code changed since, or its result is not deterministic")
        _store_again(opened, stored.cid, value, call)
        repaired[stored.cid] = value
    if ref.cid not in repaired:
        raise _CannotRepair(f"op {call.op!r} no longer returns the output this value was")
    return repaired


def _run_again(opened: OpenedStore, call: Call, cid: str) -> dict[str, Any]:
    """Output name -> value of ``call`` run again here, on its stored inputs."""
    op_ = _live_op(opened, call.op)
    token = _repairing.set(_repairing.get() | {cid})
    try:
        inputs = opened.unwrap(dict(call.inputs))
        args, kwargs = op_.arguments_of(inputs)
        with opened._as_current():
            inside = inside_op.set(True)  # nested ops hand the body plain values, as in any call
            try:
                result = op_.plain(*args, **kwargs)
            finally:
                inside_op.reset(inside)
        named, _ = op_.split_outputs(result)
    except (CorruptValueError, MissingBlobError, NotStoredError) as err:
        raise _CannotRepair(f"its call's inputs cannot be loaded either: {err}") from None
    except Exception as err:
        raise _CannotRepair(f"running op {call.op!r} again raised {type(err).__name__}: {err}") from None
    finally:
        _repairing.reset(token)
    return {name: freeze(value) if isinstance(value, File) else value for name, value in named}


def _live_op(opened: OpenedStore, name: str) -> Any:
    """The op defined in this process that made the store's calls named ``name``."""
    ops = [op_ for op_ in live_ops(name) if hasattr(op_, "arguments_of")]
    if len({(op_.module, op_.qualname) for op_ in ops}) > 1:  # which one wrote the store's calls?
        stored = opened._store.op_identities([name]).get(name)
        ops = [op_ for op_ in ops if stored is not None and (op_.module, op_.qualname) == tuple(stored)]
        if not ops:
            raise _CannotRepair(f"several functions in this process are named op {name!r}")
    if not ops:
        raise _CannotRepair(f"op {name!r} is not defined in this process (import the module that defines it)")
    latest = current_ops().get(name)
    return latest if latest in ops else ops[0]


def _store_again(opened: OpenedStore, cid: str, value: Any, call: Call) -> None:
    """Write the recomputed value over its damaged row or blob; the value is served even if that fails."""
    try:
        opened._buffer.rewrite_value(cid, value)
    except Exception as err:  # a read-only store, a full disk: the value in hand is still right
        logger.warning("recomputed the damaged value %s with op %r but could not store it again: %s",
                       cid, call.op, err)
        return
    logger.warning("the stored value %s was damaged or missing: recomputed it with op %r (call %s) "
                   "and stored it again", cid, call.op, call.hid)


def _unrepaired(problem: StorageError, why: str) -> StorageError:
    """The load's error, saying why the value was not recomputed."""
    text = f"{problem}. It was not recomputed: {why}"
    if isinstance(problem, CorruptValueError):
        return CorruptValueError(text, cid=problem.cid, call_hids=problem.call_hids)
    return type(problem)(text)


def call_arguments(signature: inspect.Signature, inputs: dict[str, Any], var_positional: str | None, escape: str,
                   defaults: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The (args, kwargs) of a call whose identity inputs are ``inputs`` (``Op.bind``'s inverse).

    ``*args`` items are named ``<var_positional><i>``; ``**kwargs`` keys that
    could be mistaken for them start with ``escape``. Arguments left out of the
    identity (ignored ones) take their ``defaults``; one that has none raises
    TypeError.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    left = dict(inputs)
    by_position = var_positional is not None and any(
        name.startswith(var_positional) and name[len(var_positional):].isdigit() for name in left)
    for parameter in signature.parameters.values():
        name, kind = parameter.name, parameter.kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            position = 0
            while f"{var_positional}{position}" in left:
                args.append(left.pop(f"{var_positional}{position}"))
                position += 1
        elif kind == inspect.Parameter.VAR_KEYWORD:
            kwargs.update((key[len(escape):] if key.startswith(escape) else key, value) for key, value in left.items())
            left.clear()
        elif kind == inspect.Parameter.POSITIONAL_ONLY or (
                by_position and kind == inspect.Parameter.POSITIONAL_OR_KEYWORD):
            if name in left:
                args.append(left.pop(name))
            elif name in defaults:  # left out of the identity (ignored): its default holds its place
                args.append(defaults[name])
            else:
                raise TypeError(f"argument {name!r} is not stored with the call, and has no default")
        elif name in left:
            kwargs[name] = left.pop(name)
    return args, kwargs
