"""Questions about the history of stored work: why a call would miss, where a
value came from, and carrying calls over to a compatible new version.

Functions of a storage, below ``storage.py`` so that ``Storage`` can offer
them as methods (``storage.explain``, ``storage.lineage``,
``storage.mark_compatible``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Collection, Sequence

from memostore.canonical import bytecode_pythons, without_bytecode_pythons
from memostore.carryover import move_calls
from memostore.collections import pack_arguments
from memostore.errors import NotStoredError
from memostore.model import Call, Ref, call_identity, input_ref_hid
from memostore.notebook import lineage_html
from memostore.reports import diff_versions

if TYPE_CHECKING:
    import pandas as pd

    from memostore.deps import Dependency
    from memostore.opened import OpenedStore


@dataclasses.dataclass
class Explanation:
    """Whether a call would be a hit, and if not, what differs from the nearest stored call."""

    op: str
    hit: bool
    how: str
    nearest: Call | None = None
    differences: list[str] = dataclasses.field(default_factory=list)
    version_diff: str = ""

    def __str__(self) -> str:
        lines = [f"{self.op}: {self.how}"]
        if self.nearest is not None:
            lines.append(f"nearest stored call: {self.nearest!r}")
        lines.extend(f"  - {difference}" for difference in self.differences)
        if self.version_diff:
            lines.append(self.version_diff.rstrip("\n"))
        return "\n".join(lines)


def explain(storage: OpenedStore, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Explanation:
    """See ``Storage.explain``."""
    bound = pack_arguments(None, op.name, op.bind(args, kwargs), op.collection_params, op.ignore)
    inputs: dict[str, Ref] = op.identify_inputs(bound)
    version = storage.version_of(op, refresh=True)
    key = call_identity(op.name, version, inputs)
    found = storage.call_path.find(key)
    if found is not None:
        how = "hit: this call is stored" if found.call_hid == key.hid else \
            "hit: a call on the same contents is stored (its inputs came another way)"
        return Explanation(op.name, True, how)
    storage.commit()
    stored = storage.reader.calls_of_op(op.name)
    if not stored:
        return Explanation(op.name, False, "miss: no call of this op is stored")
    ranked = sorted(stored, key=lambda c: (len(_differences(c, version, inputs)), c.version != version, c.hid))
    nearest = ranked[0]
    if nearest.version == version:
        return Explanation(op.name, False, "miss", nearest, _differences(nearest, version, inputs))
    rows = storage.reader.op_version_rows(op.name)
    reason = _version_change(rows, nearest.version, version)
    explanation = Explanation(op.name, False, "miss", nearest, _differences(nearest, version, inputs, reason))
    try:
        explanation.version_diff = diff_versions(rows, op.name, nearest.version, version)
    except NotStoredError:
        pass  # the current version was never stored: nothing to diff against
    return explanation


def _version_change(rows: list[dict[str, Any]], old: str, new: str) -> str:
    """Why two versions differ: the code, or only the Python that compiled code without source."""
    by_version = {row["version"]: row for row in rows}
    if old not in by_version or new not in by_version:
        return "the code changed"
    texts = [(by_version[v]["source"] or "") + (by_version[v]["dependencies"] or "") for v in (old, new)]
    pythons = [sorted(set(bytecode_pythons(text))) for text in texts]
    if pythons[0] != pythons[1] and without_bytecode_pythons(texts[0]) == without_bytecode_pythons(texts[1]):
        return (f"another Python: code without source is versioned by its bytecode, which "
                f"Python {', '.join(pythons[0])} compiled and Python {', '.join(pythons[1])} compiles differently")
    return "the code changed"


def _differences(call: Call, version: str, inputs: dict[str, Ref], reason: str = "the code changed") -> list[str]:
    found = []
    if call.version != version:
        found.append(f"op version: stored {call.version[:8]}, now {version[:8]} ({reason})")
    for name in sorted(inputs.keys() - call.inputs.keys()):
        found.append(f"argument {name!r} is new: added without NewArgDefault, or passed where it was not before")
    for name in sorted(call.inputs.keys() - inputs.keys()):
        found.append(f"argument {name!r} was given before and is not now")
    for name in sorted(inputs.keys() & call.inputs.keys()):
        if inputs[name].cid != call.inputs[name].cid:
            found.append(f"argument {name!r} has other contents")
    return found


LINEAGE_COLUMNS = ["depth", "parent", "ref", "cid", "via", "op", "version", "output", "call", "value", "passed_in",
                   "repeated"]


def lineage(storage: OpenedStore, refs: Sequence[Ref]) -> pd.DataFrame:
    """See ``Storage.lineage``: the trees of ``refs``, one after another."""
    storage.commit()
    made_by = _producers(storage, [ref.hid for ref in refs])
    rows = _tree_rows(refs, made_by)
    by_hand = [row for row in rows if row["op"] is None and input_ref_hid(row["cid"]) == row["ref"]]
    values = _load_some(storage, {row["cid"] for row in by_hand})
    for row in by_hand:
        row["value"] = values.get(row["cid"])
        row["passed_in"] = row["cid"] in values
    table = _lineage_class()(rows, columns=LINEAGE_COLUMNS, dtype=object)
    table["depth"] = table["depth"].astype(int)  # the rest stay objects: None marks a value passed in
    table["parent"] = table["parent"].astype("Int64")
    return table


def _producers(storage: OpenedStore, ref_hids: list[str]) -> dict[str, tuple[Call, str]]:
    """ref hid -> (the call that made it, output name), for every ref upstream of ``ref_hids``."""
    made_by: dict[str, tuple[Call, str]] = {}
    asked: set[str] = set()
    frontier = list(dict.fromkeys(ref_hids))
    while frontier:
        asked.update(frontier)
        edges = storage.reader.edges_of_refs(frontier, "out")
        calls = {c.hid: c for c in storage.reader.calls_by_hids({e.call_hid for e in edges})}
        inputs: dict[str, None] = {}
        for edge in edges:
            if edge.call_hid in calls:
                made_by[edge.ref_hid] = (calls[edge.call_hid], edge.name)
                inputs.update((r.hid, None) for r in calls[edge.call_hid].inputs.values())
        frontier = [hid for hid in inputs if hid not in asked]
    return made_by


def _tree_rows(refs: Sequence[Ref], made_by: dict[str, tuple[Call, str]]) -> list[dict[str, Any]]:
    """Depth-first rows: each ref, then the inputs of the call that made it, each under its parent.

    A call met again (two inputs made by one call, a diamond) is shown once;
    later rows of it have ``repeated`` set and no children.
    """
    rows: list[dict[str, Any]] = []
    expanded: set[str] = set()
    stack: list[tuple[Ref, int, str, int | None]] = [(ref, 0, "", None) for ref in reversed(refs)]
    while stack:
        current, depth, via, parent = stack.pop()
        row: dict[str, Any] = {"depth": depth, "parent": parent, "ref": current.hid, "cid": current.cid, "via": via,
               "op": None, "version": None, "output": None, "call": None, "value": None, "passed_in": False,
               "repeated": False}
        if current.hid in made_by:
            call, output = made_by[current.hid]
            row.update(op=call.op, version=call.version, output=output, call=call,
                       repeated=call.hid in expanded)
            if not row["repeated"]:
                expanded.add(call.hid)
                position = len(rows)
                stack.extend((r, depth + 1, name, position) for name, r in reversed(call.inputs.items()))
        rows.append(row)
    return rows


def _load_some(storage: OpenedStore, cids: set[str]) -> dict[str, Any]:
    """The values of those cids that are stored (a lone ref's value may not be)."""
    try:
        return storage.reader.load_values(cids)
    except NotStoredError:
        found = {}
        for cid in cids:
            try:
                found.update(storage.reader.load_values([cid]))
            except NotStoredError:
                continue
        return found


_LINEAGE: Any = None
VALUE_PREVIEW_CHARS = 60


def _lineage_class() -> Any:
    """A DataFrame whose ``print`` draws the lineage as a tree (made once, pandas being optional at import)."""
    global _LINEAGE
    if _LINEAGE is None:
        import pandas as pd

        class Lineage(pd.DataFrame):  # type: ignore[misc]
            @property
            def _constructor(self) -> Any:
                return pd.DataFrame

            def _repr_html_(self) -> str:
                return lineage_html(self.to_dict("records"), [str(c) for c in self.columns])

            def __str__(self) -> str:
                return "\n".join(_tree_line(row) for row in self.itertuples())

        _LINEAGE = Lineage
    return _LINEAGE


def _tree_line(row: Any) -> str:
    indent = "    " * int(row.depth)
    name = row.via or "ref"
    if row.op is not None:
        again = " (shown above)" if row.repeated else ""
        return f"{indent}{name} {row.ref[:8]} = {row.op}@{row.version[:8]}.{row.output}{again}"
    if row.passed_in:
        shown = repr(row.value)
        if len(shown) > VALUE_PREVIEW_CHARS:
            shown = shown[:VALUE_PREVIEW_CHARS - 3] + "..."
        return f"{indent}{name} {row.ref[:8]} = {shown} (a value passed in)"
    return f"{indent}{name} {row.ref[:8]}: made by a call no longer stored" if input_ref_hid(row.cid) != row.ref \
        else f"{indent}{name} {row.ref[:8]}: a value passed in (not stored)"


def mark_compatible(storage: OpenedStore, op: Any, from_version: str | None = None) -> int:
    """See ``Storage.mark_compatible``."""
    current = storage.version_of(op, refresh=True)
    storage.commit()
    rows = [r for r in storage.reader.op_version_rows(op.name) if r["version"] != current and r["calls"]]
    if from_version is not None:
        rows = [r for r in rows if r["version"].startswith(from_version)]
    if not rows:
        raise NotStoredError(f"op {op.name!r} has no other stored version with calls to carry over"
                             + (f" matching {from_version!r}" if from_version else ""))
    source = max(rows, key=lambda r: r["last_used"])["version"]
    carried = carry_over(storage, op, current, {source})
    storage._store.note_compatible(op.name, source, current)  # the former code finds them there too
    return carried


def carry_over(storage: OpenedStore, op: Any, version: str, from_versions: Collection[str]) -> int:
    """Move the successful calls of ``from_versions`` to ``version`` (see ``carryover``); returns how many.

    Used by ``mark_compatible`` and for versions of memostore 0.1's formula.
    """
    calls = [c for c in storage.reader.calls_of_op(op.name) if c.version in from_versions and c.status == "ok"]
    return move_calls(storage, calls, version) if calls else 0


def carry_over_former(storage: OpenedStore, op: Any, version: str, dependencies: Sequence[Dependency],
                      stored: set[str]) -> frozenset[str]:
    """The stored versions that memostore 0.1 gave this code (by any Python, from any entry
    point); their calls are moved to ``version``, wherever they are left (a store an earlier
    release carried over copied them instead: moving them merges the copies).

    Called once per op version and storage, never per call.
    """
    if not stored - {version}:
        return frozenset()
    former = frozenset(op.former_versions_with(dependencies) & stored)
    if former and any(row["calls"] for row in storage.reader.op_version_rows(op.name) if row["version"] in former):
        carry_over(storage, op, version, former)
    return former
