"""HTML for Jupyter: how refs, calls, stores and lineages show in a notebook.

Each class's ``_repr_html_`` is one line calling a function here. The
functions read only public attributes of what they are given (duck typing),
so this module imports nothing from memostore and sits in the lowest layer;
frames render in ``draw.py``, which can reach the graph and Graphviz.
Every piece of text is escaped; values are previewed, never loaded.
"""

from __future__ import annotations

import datetime
import html
import numbers
import reprlib
from typing import Any, Iterable, Mapping, Sequence

PREVIEW_CHARS = 200  # longest value preview, in characters
HID_CHARS = 8  # how much of an id a table shows (the whole id is in the tooltip)
_STYLE = ("<style>.memostore table{border-collapse:collapse;margin:2px 0}"
          ".memostore th,.memostore td{text-align:left;padding:1px 8px;vertical-align:top}"
          ".memostore .muted{color:#888}</style>")
_repr = reprlib.Repr()
_repr.maxstring = PREVIEW_CHARS
_repr.maxother = PREVIEW_CHARS


def escape(value: Any) -> str:
    """``str(value)``, safe to put in HTML.

    >>> escape("<b>&</b>")
    '&lt;b&gt;&amp;&lt;/b&gt;'
    """
    return html.escape(str(value), quote=True)


def block(title: str, *parts: str) -> str:
    """A titled block of memostore output, with the shared style."""
    return f'<div class="memostore">{_STYLE}<strong>{escape(title)}</strong>{"".join(parts)}</div>'


def table(rows: Iterable[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """A table of cells that are already HTML (escape text with ``escape``).

    >>> table([("a", "1")], header=("name", "value"))
    '<table><tr><th>name</th><th>value</th></tr><tr><td>a</td><td>1</td></tr></table>'
    """
    head = "" if header is None else "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def short_id(full: str) -> str:
    """An id cut to ``HID_CHARS``, the whole of it in a tooltip."""
    return f'<code title="{escape(full)}">{escape(full[:HID_CHARS])}</code>'


def muted(text: str) -> str:
    return f'<span class="muted">{escape(text)}</span>'


def value_preview(ref: Any) -> str:
    """The ref's value, shortened, or "not loaded" for a lazy ref (nothing is loaded to show it)."""
    if not ref.in_memory:
        return muted("not loaded")
    return f"<code>{escape(_repr.repr(ref.value))}</code>"


def ref_html(ref: Any) -> str:
    """A Ref: its value (or "not loaded") and its two ids."""
    rows = [("value", value_preview(ref)), ("hid", short_id(ref.hid)), ("cid", short_id(ref.cid))]
    return block("Ref", table(rows))


def _refs_table(refs: Mapping[str, Any]) -> str:
    if not refs:
        return muted("none")
    return table([(escape(name), value_preview(ref), short_id(ref.hid)) for name, ref in refs.items()])


def _when(started_at: float) -> str:
    if not started_at:
        return muted("unknown")
    moment = datetime.datetime.fromtimestamp(started_at, tz=datetime.timezone.utc)
    return escape(moment.strftime("%Y-%m-%d %H:%M:%S UTC"))


def call_html(call: Any) -> str:
    """A Call: op, version, status, when and how long, its inputs and outputs, and its error if it failed."""
    rows = [
        ("op", f"<code>{escape(call.op)}</code>"),
        ("version", short_id(call.version)),
        ("hid", short_id(call.hid)),
        ("status", escape(call.status)),
        ("started", _when(call.started_at)),
        ("duration", escape(f"{call.duration_s:.3f} s")),
        ("inputs", _refs_table(call.inputs)),
        ("outputs", _refs_table(call.outputs)),
    ]
    if call.error is not None:
        error = (f"{escape(call.error.type)}: {escape(call.error.message)}"
                 f"<details><summary>traceback</summary><pre>{escape(call.error.traceback)}</pre></details>")
        rows.append(("error", error))
    return block(f"Call of {call.op}", table(rows))


def storage_html(location: str, counts: Mapping[str, Any], op_calls: Mapping[str, int], pending: int) -> str:
    """A storage: where it is, what it holds, and the ops defined in this session with their stored calls."""
    rows = [("location", escape(location))]
    rows += [(escape(name), escape(f"{value:,}" if isinstance(value, int) else value))
             for name, value in counts.items()]
    if pending:
        rows.append(("pending", escape(f"{pending:,} calls not yet written (storage.commit() writes them)")))
    ops = (table([(f"<code>{escape(name)}</code>", escape(f"{calls:,}")) for name, calls in op_calls.items()],
                 header=("op", "stored calls")) if op_calls else muted("no op defined in this session"))
    return block("Storage", table(rows), "<div>Ops defined in this session:</div>", ops)


_LINEAGE_STEP = frozenset({"depth", "parent", "ref", "cid", "via", "op", "version", "output", "call", "value",
                           "passed_in", "repeated"})  # shown in the tree's labels; other columns get their own


def lineage_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A lineage as an indented tree: one line per step back, then any other columns as they are.

    Indentation comes from a ``depth`` column, or from a ``parent`` column
    (the row number of each step's parent); with neither, rows are not indented.

    >>> rows = [{"depth": 0, "ref": "ab12", "via": "", "op": "add", "version": "v1", "output": "output_0"},
    ...         {"depth": 1, "ref": "cd34", "via": "x", "op": None, "value": 3}]
    >>> markup = lineage_html(rows, ["depth", "ref", "via", "op", "version", "output", "value"])
    >>> "padding-left:1.5em" in markup and "a value passed in:" in markup
    True
    """
    depths = _depths(rows, columns)
    shown = [c for c in columns if c not in _LINEAGE_STEP]
    body = []
    for row, depth in zip(rows, depths, strict=True):
        pad = f'<span style="padding-left:{1.5 * depth:.1f}em">{"└─ " if depth else ""}</span>'
        body.append([pad + _step_label(row)] + [_cell(row.get(c)) for c in shown])
    return block("Lineage", table(body, header=["step", *shown]))


def _depths(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[int]:
    if "depth" in columns:
        return [int(row["depth"]) for row in rows]
    depths: list[int] = []
    for row in rows:
        parent = row.get("parent")
        if isinstance(parent, numbers.Integral) and 0 <= int(parent) < len(depths):
            depths.append(depths[int(parent)] + 1)
        else:
            depths.append(0)
    return depths


def _step_label(row: Mapping[str, Any]) -> str:
    name = escape(row.get("via") or "ref")
    ref = row.get("ref")
    ref_part = f" {short_id(str(ref))}" if ref else ""
    if row.get("op") is None:
        value = row.get("value")
        if _missing(value):
            return f"{name}{ref_part} {muted('a value passed in')}"
        return f"{name}{ref_part} {muted('a value passed in:')} <code>{escape(_repr.repr(value))}</code>"
    version = row.get("version")
    version_part = f"@{escape(str(version)[:HID_CHARS])}" if version else ""
    output = row.get("output")
    output_part = f".{escape(output)}" if output else ""
    again = f" {muted('(its inputs are shown above)')}" if row.get("repeated") is True else ""
    return f"{name}{ref_part} = <code>{escape(row['op'])}{version_part}{output_part}</code>{again}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    return escape(_repr.repr(value) if not isinstance(value, str) else value)
