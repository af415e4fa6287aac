"""Moving stored calls to a new version of their op, as the same computations.

A call carried over to a new version (``mark_compatible``, or a store of
memostore 0.1 whose versions were computed another way) is the computation
it was, seen under the version the current code has. Its history id is
derived from the version, and the history ids of its outputs from its own,
so every call downstream of it reads refs whose ids change too: what the
current code would compute for the same work. Carrying therefore moves the
whole downstream part of the graph to the ids a re-run computes, and
deletes the records under the former ids. The store then holds each
computation once: a re-run finds every call by its history, frames show
one row per computation, and nothing carried is left for ``stale_calls``.

Nothing is lost on the way: the moved calls are committed before the
former records are deleted, and their values stay (the same content ids).
A call whose new identity is stored already with other outputs (an op that
is not deterministic, or a refactor that was not compatible after all) is
left where it was, with everything downstream of it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable

from memostore.model import Call, Ref, call_ids, output_ref_hid

if TYPE_CHECKING:
    from memostore.opened import OpenedStore

logger = logging.getLogger(__name__)


def move_calls(storage: OpenedStore, calls: Iterable[Call], version: str) -> int:
    """Move ``calls`` (of one op) to ``version``, and everything downstream of them to the ids that
    follow; returns how many of ``calls`` are now stored under ``version``."""
    storage.commit()
    first = {call.hid: call for call in calls}
    affected = _downstream(storage, first)
    if not all(_reproducible(call) for call in affected.values()):
        # Not a call this release hashes (none known): copy, and delete nothing.
        logger.warning("carrying calls of %r over: some calls downstream have ids of unknown origin; "
                       "the former calls are kept", next(iter(first.values())).op)
        storage.call_path.record_carried(_moved(storage, affected, first, version, copy_only=True)[0])
        storage.commit()
        return len(first)
    new_calls, gone = _moved(storage, affected, first, version)
    storage.call_path.record_carried(new_calls)
    storage.commit()  # committed before anything is deleted: a crash in between leaves copies, not losses
    _drop_quietly(storage, gone)
    return sum(1 for hid in first if hid in gone)


def _downstream(storage: OpenedStore, first: dict[str, Call]) -> dict[str, Call]:
    """``first`` and every call that read an output of one of them, recursively."""
    affected = dict(first)
    frontier = list(first.values())
    while frontier:
        outputs = [ref.hid for call in frontier for ref in call.outputs.values()]
        readers = {edge.call_hid for edge in storage.reader.edges_of_refs(outputs, "in")} - affected.keys()
        frontier = storage.reader.calls_by_hids(readers) if readers else []
        affected.update((call.hid, call) for call in frontier)
    return affected


def _reproducible(call: Call) -> bool:
    """Whether the call's ids are what ``call_ids`` gives for its op, version and inputs."""
    hid = call_ids(call.op, call.version, call.inputs)[0]
    return hid == call.hid and all(ref.hid == output_ref_hid(hid, name) for name, ref in call.outputs.items())


def _moved(storage: OpenedStore, affected: dict[str, Call], first: dict[str, Call], version: str,
           copy_only: bool = False) -> tuple[list[Call], set[str]]:
    """The calls to record under their new ids, and the hids of the former records they replace.

    Calls are taken producers first, so each one's inputs are renamed before it is.
    """
    order = _producers_first(affected)
    planned = _renamed(order, first, version, lambda call, outputs: True)
    stored = {call.hid: call for call in storage.reader.calls_by_hids({c.hid for c in planned.values()})}

    asked = {call.hid for call in planned.values()}

    def movable(new: Call, outputs: dict[str, Ref]) -> bool:
        if new.hid not in asked:  # ids that follow from a call left in place: rare, asked one by one
            asked.add(new.hid)
            stored.update((call.hid, call) for call in storage.reader.calls_by_hids([new.hid]))
        there = stored.get(new.hid)
        return there is None or _same_outputs(there, new)

    moved = _renamed(order, first, version, movable)
    new_calls = [new for hid, new in moved.items() if new.hid not in stored]
    return new_calls, set() if copy_only else set(moved)


def _renamed(order: list[Call], first: dict[str, Call], version: str,
             movable: Callable[[Call, dict[str, Ref]], bool]) -> dict[str, Call]:
    """former hid -> the call under its new ids, for the calls of ``order`` (producers first) whose ids change
    and that ``movable`` accepts; a call it refuses keeps its ids, and so do the refs it made."""
    renamed: dict[str, str] = {}  # former ref hid -> new ref hid
    moved: dict[str, Call] = {}
    for call in order:
        call_version = version if call.hid in first else call.version
        inputs = {name: Ref(ref.cid, renamed.get(ref.hid, ref.hid)) for name, ref in call.inputs.items()}
        hid, cid = call_ids(call.op, call_version, inputs)
        if hid == call.hid:
            continue
        outputs = {name: Ref(ref.cid, output_ref_hid(hid, name)) for name, ref in call.outputs.items()}
        new = Call(call.op, call_version, hid, cid, inputs, outputs, call.status, call.multi_output,
                   call.started_at, call.duration_s, call.error)
        if movable(new, outputs):
            renamed.update((ref.hid, outputs[name].hid) for name, ref in call.outputs.items())
            moved[call.hid] = new
    return moved


def _same_outputs(stored: Call, new: Call) -> bool:
    """Whether a stored call with ``new``'s identity is the same computation (else it stays as it is)."""
    return stored.status == new.status and {name: ref.cid for name, ref in stored.outputs.items()} == \
        {name: ref.cid for name, ref in new.outputs.items()}


def _producers_first(calls: dict[str, Call]) -> list[Call]:
    """``calls`` ordered so that a call comes after those among them that made its inputs."""
    producer = {ref.hid: call.hid for call in calls.values() for ref in call.outputs.values()}
    ordered: list[Call] = []
    placed: set[str] = set()
    for start in calls:
        stack = [(start, False)]
        while stack:
            hid, inputs_placed = stack.pop()
            if hid in placed:
                continue
            if inputs_placed:
                placed.add(hid)
                ordered.append(calls[hid])
                continue
            stack.append((hid, True))
            stack.extend((producer[ref.hid], False) for ref in calls[hid].inputs.values()
                         if ref.hid in producer and producer[ref.hid] not in placed)
    return ordered


def _drop_quietly(storage: OpenedStore, hids: set[str]) -> None:
    """Delete the former records, those another process has not deleted already."""
    for _ in range(3):
        still = [call.hid for call in storage.reader.calls_by_hids(hids)]
        if not still:
            return
        missing, _ = storage._store.drop_calls(still, False)
        if not missing:
            storage._buffer.forget(hids)
            return
