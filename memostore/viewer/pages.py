"""What each page shows, gathered from the store through the public API."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from memostore import Call, Storage
from memostore.viewer.previews import Preview, load_values, preview

CALLS_PER_PAGE = 25
STATUSES = ("ok", "failed")


@dataclasses.dataclass(frozen=True)
class CallRow:
    """One call in an op's calls table."""

    call: Call
    started: str
    inputs: dict[str, Preview]
    outputs: dict[str, Preview]


@dataclasses.dataclass(frozen=True)
class CallsPage:
    """One page of an op's calls, after the version and status filters."""

    rows: list[CallRow]
    page: int
    pages: int
    total: int
    version: str
    status: str


def timestamp(seconds: float | None) -> str:
    """A stored time (seconds since the epoch) as UTC text."""
    if seconds is None or seconds != seconds:
        return ""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def size_on_disk(db: str) -> int | None:
    """Bytes of a SQLite store's files and blobs; None for a database server."""
    if "://" in db:
        return None
    files = [Path(db + suffix) for suffix in ("", "-wal", "-shm")]
    size = sum(p.stat().st_size for p in files if p.is_file())
    blobs = Path(str(Path(db).resolve()) + "-blobs")
    if blobs.is_dir():
        size += sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file())
    return size


def op_rows(storage: Storage) -> list[dict[str, Any]]:
    """The overview's table: ``storage.ops()`` as dicts with readable times."""
    rows: list[dict[str, Any]] = storage.ops().to_dict("records")
    for row in rows:
        for column in ("first_used", "last_used"):
            row[column] = timestamp(row[column].timestamp()) if row[column] is not None else ""
    return rows


def versions_of(storage: Storage, name: str) -> list[dict[str, Any]]:
    """An op's versions, oldest first, each with its source and its diff from the one before."""
    rows: list[dict[str, Any]] = storage.versions(name).to_dict("records")
    previous = None
    for row in rows:
        row["source"] = _source_or_reason(storage, name, row["version"])
        row["diff"] = "" if previous is None else storage.diff(name, previous, row["version"])
        row["first_used"], row["last_used"] = (timestamp(row[c].timestamp()) for c in ("first_used", "last_used"))
        previous = row["version"]
    return rows


def _source_or_reason(storage: Storage, name: str, version: str) -> str:
    try:
        return storage.source(name, version=version)
    except KeyError as err:  # NotStoredError: stored without source
        return f"({err.args[0]})"


def calls_page(storage: Storage, name: str, version: str, status: str, page: int) -> CallsPage:
    """The calls of an op (newest first) of a version prefix and status, one page of them."""
    calls = [c for c in storage.calls_of(name)
             if c.version.startswith(version) and (not status or c.status == status)]
    pages = max(1, math.ceil(len(calls) / CALLS_PER_PAGE))
    page = min(max(page, 1), pages)
    shown = calls[(page - 1) * CALLS_PER_PAGE: page * CALLS_PER_PAGE]
    values = load_values(storage, [ref for c in shown for ref in (*c.inputs.values(), *c.outputs.values())])
    rows = [CallRow(c, timestamp(c.started_at),
                    {n: preview(values[r.hid]) for n, r in sorted(c.inputs.items())},
                    {n: preview(values[r.hid]) for n, r in c.outputs.items()}) for c in shown]
    return CallsPage(rows, page, pages, len(calls), version, status)


def call_detail(storage: Storage, hid: str) -> dict[str, Any]:
    """A call's page: the call, its values with previews, where inputs came from and outputs went."""
    call = storage.get_call(hid)
    values = load_values(storage, [*call.inputs.values(), *call.outputs.values()])
    inputs = [{"name": n, "ref": r, "preview": preview(values[r.hid]), "creator": storage.get_ref_creator(r)}
              for n, r in sorted(call.inputs.items())]
    outputs = [{"name": n, "ref": r, "preview": preview(values[r.hid]),
                "consumers": sorted(storage.get_consumers(r), key=lambda c: (c.op, c.started_at))}
               for n, r in call.outputs.items()]
    return {"call": call, "started": timestamp(call.started_at), "inputs": inputs, "outputs": outputs}


def graph_svgs(storage: Storage, calls_by_op: dict[str, int]) -> list[str]:
    """The store's ops and the values between them: one inline SVG per connected web of calls.

    Each web is a frame of one op's calls expanded over the store
    (``expand_all``), drawn by ``frame.draw()``, with op nodes linking to op
    pages. Ops are taken in turn until every stored call is in a drawn web; a
    web inside a later, larger one is not drawn twice.
    """
    webs: list[tuple[set[str], Any]] = []
    drawn: dict[str, set[str]] = {}
    for name, total in calls_by_op.items():
        if len(drawn.get(name, ())) >= total and name in drawn:
            continue
        frame = storage.cf(name).expand_all()
        calls: set[str] = set().union(*frame.ops.values())
        for node, hids in frame.ops.items():
            drawn.setdefault(frame.graph.op_names[node], set()).update(hids)
        webs = [(other, web) for other, web in webs if not other <= calls] + [(calls, frame)]
    return [_linked_svg(frame) for _, frame in webs]


def _linked_svg(frame: Any) -> str:
    dot = frame.draw(verbose=True)
    for node, op_name in frame.graph.op_names.items():
        node_id = f"op__{node}"  # how frame.draw names op nodes; an op it names otherwise stays unlinked
        if re.search(rf'^\t"?{re.escape(node_id)}"? \[', dot.source, flags=re.MULTILINE):
            dot.node(node_id, URL=f"/op/{quote(op_name, safe='')}", target="_top", tooltip=f"op {op_name}")
    svg = dot.pipe(format="svg").decode("utf-8")
    return re.sub(r"^.*?(?=<svg)", "", svg, flags=re.DOTALL)  # inline: no XML prolog or doctype
