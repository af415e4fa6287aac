"""The graph a new frame starts from: ops, Calls, Refs and hids, or named groups of Refs.

``storage.cf(source)`` takes an op (or its name), a Ref, a Call, a hid, a list
mixing them, or a dict of named groups of Refs (``{"model": models, "test_acc":
accs}``): each group becomes a variable of that name, to expand from. The
Refs of a list (or one Ref) go in one variable, ``v``, as in mandala: the
results of one loop or ``map`` expand back to one op node, one row per
result. A Ref that a Call of the list already shows (its output or input)
is left there, so that a result and the call that made it make one row.
"""

from __future__ import annotations

import string
from typing import Any, Iterable, Mapping

import numpy as np

from memostore.cf.columns import CallIndex
from memostore.cf.expand import frame_of_calls
from memostore.cf.graph import FrameGraph
from memostore.cf.hidset import HEX_CHARS, HidSet, unique_keys
from memostore.errors import FrameArgumentError, NotStoredError
from memostore.model import Call, Ref

_HEX_DIGITS = frozenset(string.hexdigits.lower())


def looks_like_hid(text: str) -> bool:
    """Whether a string is a hid (32 lowercase hex digits) rather than an op name."""
    return len(text) == HEX_CHARS and set(text) <= _HEX_DIGITS


def source_graph(source: Any, index: CallIndex) -> FrameGraph:
    """The graph of a frame made from ``source`` (see the module docstring)."""
    if isinstance(source, Mapping):
        return _groups(source, index)
    items = list(source) if isinstance(source, (list, tuple, set)) else [source]
    call_keys, empty_ops, ref_hids, hids, call_hids = [], [], [], [], []
    for item in items:
        if isinstance(item, Ref):
            ref_hids.append(item.hid)
        elif isinstance(item, Call):
            call_hids.append(item.hid)  # fetched together below: one batch, not a query per call
        elif isinstance(item, str) and looks_like_hid(item):
            hids.append(item)
        else:
            name = item if isinstance(item, str) else getattr(item, "name", None)
            if not isinstance(name, str):
                raise FrameArgumentError(
                    f"storage.cf takes an op, an op name, a Ref, a Call, a hid, a list of them, or a dict of "
                    f"named groups of Refs; got {item!r}")
            keys = index.calls_of_op(name)
            call_keys.append(keys)
            if not keys.size:
                empty_ops.append(name)
    if call_hids:
        call_keys.append(index.fetch(call_hids))
    if hids:
        found_calls, found_refs = _resolve(hids, index)
        call_keys.append(found_calls)
        ref_hids.extend(found_refs)
    keys = unique_keys(np.concatenate(call_keys)) if call_keys else np.empty(0, dtype=np.uint64)
    graph = frame_of_calls(index, keys)
    for name in empty_ops:  # an op with no stored calls is still a (empty) node
        if name not in graph.op_names.values():
            node = graph.fresh_name(name)
            graph = graph.with_nodes(ops={node: ()}, op_names={node: name})
    return _with_refs(graph, ref_hids)


def _with_refs(graph: FrameGraph, ref_hids: list[str]) -> FrameGraph:
    """The graph with the Refs given in one variable ``v`` (as mandala's ``from_refs``), but those the
    calls given already show: a Ref and the call that made it are one computation, one row."""
    if not ref_hids:
        return graph
    refs = HidSet.of(ref_hids)
    for shown in graph.vars.values():
        refs = refs - shown
    return graph.with_nodes(vars={graph.fresh_name("v"): refs}) if refs else graph


def _resolve(hids: list[str], index: CallIndex) -> tuple[np.ndarray, list[str]]:
    """(keys of the stored calls, the ref hids) among these hids; raises if one is neither."""
    asked = HidSet.of(hids)
    call_keys = index.fetch(asked)
    others = [h for h in dict.fromkeys(hids) if h not in HidSet(call_keys, asked.raw_of(call_keys))]
    refs = index.reader.ref_cids(others) if others else {}
    missing = [h for h in others if h not in refs]
    if missing:
        raise NotStoredError(f"storage.cf: {missing[:3]} name(s) no stored call or ref; pass the hid of a "
                             f"stored call or value (ref.hid, call.hid)")
    return call_keys, others


def _groups(groups: Mapping[Any, Any], index: CallIndex) -> FrameGraph:
    """One variable per named group of Refs (or ref hids), no ops yet."""
    vars: dict[str, list[str]] = {}
    for name, group in groups.items():
        if not isinstance(name, str) or not name:
            raise FrameArgumentError(f"storage.cf: a group's name must be a non-empty string, got {name!r}")
        members = [group] if isinstance(group, (Ref, str)) else _members(name, group)
        hids = []
        for member in members:
            if isinstance(member, Ref):
                hids.append(member.hid)
            elif isinstance(member, str) and looks_like_hid(member):
                hids.append(member)
            else:
                raise FrameArgumentError(f"storage.cf: group {name!r} holds {member!r}; a group holds Refs "
                                         f"(or their hids), e.g. {{'model': [ref, ...]}}")
        vars[name] = hids
    named = [h for hids in vars.values() for h in hids]
    if named:
        stored = index.reader.ref_cids(named)
        missing = [h for h in named if h not in stored]
        if missing:
            raise NotStoredError(f"storage.cf: no stored ref has the hid(s) {missing[:3]}")
    return FrameGraph.empty().with_nodes(vars=vars)


def _members(name: str, group: Any) -> list[Any]:
    if not isinstance(group, Iterable):
        raise FrameArgumentError(f"storage.cf: group {name!r} is {group!r}; give a Ref or a list of Refs")
    return [m for m in group if m is not None and not (isinstance(m, float) and m != m)]  # a df column's gaps
