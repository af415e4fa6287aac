"""One self-contained HTML file about stored results: a run, several runs, or a frame.

The report is for someone who has the store but not the code, or neither:
it carries its own CSS, the op graph as inline SVG (drawn by graphviz),
tables of the calls with their inputs and outputs, figures as embedded
PNGs, the stored source of each op version, and the provenance of every
result (call id, op version, start, duration, the run and host that
computed it). Nothing is executed again: everything is read from the
store; a value that cannot be loaded here (a pickle the storage does not
trust, a class this process cannot import) says so in its place.
"""

from __future__ import annotations

import base64
import html
import os
import time
from typing import Any, Iterable

from memostore.errors import ReportWriteError
from memostore.figures import StoredFigure
from memostore.model import Call, Ref

TABLE_ROWS = 6  # rows of a DataFrame or array shown in a cell
SHORT_ARRAY = 12  # a 1-D numeric array this long or shorter is shown on one line
TEXT_CHARS = 300  # characters of a value's text shown in a cell
MAX_CALLS_PER_OP = 500  # calls listed per op; the rest are counted

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px ui-monospace, monospace; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
.muted { color: #888; } .failed { color: #b00020; } img.value { max-width: 360px; display: block; }
.graph svg { max-width: 100%; height: auto; } table.value { font-size: 12px; margin: 0; }
"""


def write_report(storage: Any, source: Any, path: str | os.PathLike[str], title: str | None = None) -> str:
    """Write the report of ``source`` (a run id, label, RunReport, list of them, or a frame) to ``path``."""
    runs, calls = _gather(storage, source)
    if title is None:
        title = _title(runs)
    page = render(storage, title, runs, calls)
    _write(path, page)
    return os.fspath(path)


def _write(path: str | os.PathLike[str], page: str) -> None:
    """Write the page, creating its folder: a report goes where it is asked to, as a build output does."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as err:
        raise ReportWriteError(f"storage.report cannot write {os.fspath(path)!r}: {err.strerror or err}; "
                               "give a file path in a folder you can write to") from err


def _gather(storage: Any, source: Any) -> tuple[list[dict[str, Any]], list[Call]]:
    """The runs and calls a report is about."""
    op_nodes = getattr(source, "ops", None)
    if isinstance(op_nodes, dict) and hasattr(source, "expand_back"):  # a ComputationFrame
        hids = sorted({hid for node_hids in op_nodes.values() for hid in node_hids})
        return [], sorted(storage.reader.calls_by_hids(hids), key=lambda call: call.started_at)
    sources = source if isinstance(source, (list, tuple)) else [source]
    runs = [storage.run_info(run) for run in sources]
    by_hid: dict[str, Call] = {}
    for run in runs:
        for call in storage.run_calls(run["id"]):
            by_hid.setdefault(call.hid, call)
    return runs, sorted(by_hid.values(), key=lambda call: call.started_at)


def _title(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "memostore report"
    names = [run["label"] or f"run {run['id']}" for run in runs]
    return ("Run " if len(runs) == 1 else "Runs ") + ", ".join(names)


def render(storage: Any, title: str, runs: list[dict[str, Any]], calls: list[Call]) -> str:
    """The whole HTML page."""
    by_op: dict[str, list[Call]] = {}
    for call in calls:
        by_op.setdefault(call.op, []).append(call)
    shown = [call for op_calls in by_op.values() for call in op_calls[:MAX_CALLS_PER_OP]]
    computed_by = storage.call_runs(shown)
    values = _load_values(storage, [ref for call in shown for ref in (*call.inputs.values(),
                                                                       *call.outputs.values())])
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
             f"<p class='muted'>Written {_time(time.time())} from the store {_e(_where(storage))}; "
             f"{len(calls)} calls of {len(by_op)} ops. Nothing was executed to write it.</p>"]
    if runs:
        parts.append("<h2>Runs</h2>" + _runs_table(runs))
    parts.append("<h2>Op graph</h2>" + _graph_html(calls))
    produced = {ref.hid: call for call in calls for ref in call.outputs.values()}
    for op_name, op_calls in by_op.items():
        parts.append(f"<h2 id='op-{_e(op_name)}'>{_e(op_name)}</h2>")
        parts.append(_calls_table(op_calls, _Cells(values, produced), computed_by, runs))
    parts.append("<h2>Code</h2>" + _sources_html(storage, calls))
    parts.append("</body></html>")
    return "\n".join(parts)


def _where(storage: Any) -> str:
    config = storage.config
    if config.db_path is not None:
        return str(os.path.basename(config.db_path))
    return "in memory" if config.db_url is None else "on a database server"


def _runs_table(runs: list[dict[str, Any]]) -> str:
    header = ["run", "label", "tags", "kind", "started (UTC)", "duration", "computed", "found stored", "failed",
              "host", "user"]
    rows = []
    for run in runs:
        duration = "unfinished" if run["finished_at"] is None else f"{run['finished_at'] - run['started_at']:.2f} s"
        tags = ", ".join(f"{k}={v}" for k, v in sorted(run["tags"].items()))
        rows.append([_e(run["id"]), _e(run["label"] or ""), _e(tags), _e(run["kind"]), _time(run["started_at"]),
                     _e(duration), _num(run["computed"]), _num(run["hits"]), _num(run["failed"]),
                     _e(run["host"]), _e(run["user"])])
    return _table(header, rows)


class _Cells:
    """The cell of a ref: a link to the call in the report that produced it, else its value's preview."""

    def __init__(self, values: dict[str, str], produced: dict[str, Call]) -> None:
        self.values, self.produced = values, produced

    def input(self, ref: Ref) -> str:
        creator = self.produced.get(ref.hid)
        if creator is None:
            return self.values.get(ref.cid, "")
        output = next(name for name, out in creator.outputs.items() if out.hid == ref.hid)
        return (f"<a href='#call-{_e(creator.hid)}'>{_e(creator.op)}</a> "
                f"<span class='muted'>{_e(output)}</span>")

    def output(self, ref: Ref) -> str:
        return self.values.get(ref.cid, "")


def _calls_table(calls: list[Call], cells: _Cells, computed_by: dict[str, dict[str, Any]],
                 runs: list[dict[str, Any]]) -> str:
    """One row per call: its inputs (an input made by a call above links to it), outputs and provenance."""
    inputs = list(dict.fromkeys(name for call in calls for name in call.inputs))
    outputs = list(dict.fromkeys(name for call in calls for name in call.outputs))
    header = [*inputs, *(f"→ {name}" for name in outputs), "status", "call", "version", "started (UTC)",
              "duration", "computed by"]
    in_report = {run["id"] for run in runs}
    rows = []
    for call in calls[:MAX_CALLS_PER_OP]:
        run = computed_by.get(call.hid)
        origin = "<span class='muted'>before runs were recorded</span>" if run is None else _e(
            f"run {run['id']}{' (' + run['label'] + ')' if run['label'] else ''} on {run['host']}"
            + ("" if not runs or run["id"] in in_report else ", found stored"))
        status = "<span class='failed'>failed: " + _e(call.error.message if call.error else "") + "</span>" \
            if call.status == "failed" else "ok"
        rows.append([*(cells.input(call.inputs[n]) if n in call.inputs else "" for n in inputs),
                     *(cells.output(call.outputs[n]) if n in call.outputs else "" for n in outputs),
                     status, f"<code id='call-{_e(call.hid)}' title='{_e(call.hid)}'>{_e(call.hid[:12])}</code>",
                     f"<code title='{_e(call.version)}'>{_e(call.version[:12])}</code>",
                     _time(call.started_at), _e(f"{call.duration_s:.3f} s"), origin])
    more = len(calls) - MAX_CALLS_PER_OP
    note = f"<p class='muted'>and {more} more calls not listed</p>" if more > 0 else ""
    return _table(header, rows) + note


def _load_values(storage: Any, refs: Iterable[Ref]) -> dict[str, str]:
    """cid -> the HTML preview of its value, loaded in one batch (one by one if the batch fails)."""
    unique = {ref.cid: ref.detached() for ref in refs}
    try:
        loaded = dict(zip(unique, storage.unwrap(list(unique.values())), strict=True))
    except Exception:
        loaded = {}
        for cid, ref in unique.items():
            try:
                loaded[cid] = storage.unwrap(ref)
            except Exception as err:  # an untrusted pickle, a missing blob, a class not importable here
                loaded[cid] = _Unloaded(f"not loaded here: {type(err).__name__}")
    return {cid: preview(value) for cid, value in loaded.items()}


class _Unloaded:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def preview(value: Any) -> str:
    """How a value shows in a report cell, by its type."""
    if isinstance(value, _Unloaded):
        return f"<span class='muted'>&lt;{_e(value.reason)}&gt;</span>"
    if isinstance(value, StoredFigure):
        return _png(value.png, "figure")
    if type(value).__module__.startswith("matplotlib") and hasattr(value, "savefig"):
        return _png(StoredFigure.of(value).png, "figure")
    if isinstance(value, bytes) and value.startswith(b"\x89PNG"):
        return _png(value, "PNG image")
    if isinstance(value, float):
        return f"<code>{value:.6g}</code>"
    if value is None or isinstance(value, (bool, int, complex)):
        return f"<code>{_e(repr(value))}</code>"
    table = _small_table(value)
    if table is not None:
        return table
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as err:  # a stored object's own repr may fail: the report must still be written
        text = f"<{type(value).__name__}: its repr failed ({type(err).__name__})>"
    return f"<code>{_e(text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 3] + '...')}</code>"


def _small_table(value: Any) -> str | None:
    """A DataFrame, Series or 1-2 dimensional array as an HTML table (first rows), else None."""
    module = type(value).__module__
    if module.startswith("pandas") and hasattr(value, "to_frame") and hasattr(value, "name"):
        value = value.to_frame()
    if module.startswith("numpy") and getattr(value, "ndim", 0) == 1 and len(value) <= SHORT_ARRAY \
            and value.dtype.kind in "biuf":
        return "<code>[" + ", ".join(f"{item:.4g}" for item in value.tolist()) + "]</code>"
    if module.startswith("numpy") and getattr(value, "ndim", 0) in (1, 2):
        import pandas as pd

        value = pd.DataFrame(value)
    if type(value).__module__.startswith("pandas") and hasattr(value, "to_html"):
        shown = value.head(TABLE_ROWS)
        note = "" if len(shown) == len(value) else f"<div class='muted'>{len(value):,} rows, first {TABLE_ROWS}</div>"
        return str(shown.to_html(classes="value", border=0, escape=True, float_format=lambda x: f"{x:.6g}")) + note
    return None


def _png(data: bytes, what: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img class='value' alt='{_e(what)}' src='data:image/png;base64,{encoded}'>"


def _graph_html(calls: list[Call]) -> str:
    """The op graph as inline SVG: ops, the inputs given by hand, and which outputs fed which op."""
    try:
        import graphviz

        svg = graph_of_calls(calls, graphviz).pipe(format="svg").decode("utf-8")
    except Exception as err:  # no graphviz package, or no dot program: the rest of the report stands
        return f"<p class='muted'>graph not drawn ({_e(type(err).__name__)}: {_e(str(err)[:200])}); " \
               "install graphviz (pip install graphviz, and Graphviz's dot) to draw it</p>"
    return "<div class='graph'>" + str(svg[svg.find("<svg"):]) + "</div>"


def graph_of_calls(calls: list[Call], graphviz: Any) -> Any:
    """A graphviz Digraph of ops (boxes) and hand-given inputs (ellipses), edges labelled by argument."""
    produced = {ref.hid: call.op for call in calls for ref in call.outputs.values()}
    graph = graphviz.Digraph(graph_attr={"rankdir": "LR"}, node_attr={"fontname": "sans-serif"},
                             edge_attr={"fontname": "sans-serif", "fontsize": "10"})
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.op] = counts.get(call.op, 0) + 1
    node = {op_name: f"op{number}" for number, op_name in enumerate(counts)}  # ":" would read as a port
    for op_name, count in counts.items():
        graph.node(node[op_name], f"{op_name}\n{count} call{'' if count == 1 else 's'}", shape="box",
                   style="rounded,filled", fillcolor="#e8f0fe", URL=f"#op-{op_name}")
    edges: set[tuple[str, str, str]] = set()
    given_nodes: dict[tuple[str, str], str] = {}
    for call in calls:
        for name, ref in call.inputs.items():
            source = produced.get(ref.hid)
            if source is None:
                given = given_nodes.setdefault((call.op, name), f"in{len(given_nodes)}")
                graph.node(given, name, shape="ellipse", color="#888888")
                edges.add((given, node[call.op], ""))
            else:
                edges.add((node[source], node[call.op], name))
    for tail, head, label in sorted(edges):
        graph.edge(tail, head, label=label)
    return graph


def _sources_html(storage: Any, calls: list[Call]) -> str:
    """The stored source of every op version the calls ran."""
    parts = []
    for op_name, version in sorted({(call.op, call.version) for call in calls}):
        try:
            source = storage.source(op_name, version)
        except Exception as err:  # a version stored without its source (a pinned or compiled op)
            source = f"(no stored source: {err})"
        parts.append(f"<details><summary><code>{_e(op_name)}</code> version <code>{_e(version[:12])}</code>"
                     f"</summary><pre>{_e(source)}</pre></details>")
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _time(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _num(value: Any) -> str:
    return f"<span class='num'>{_e(value)}</span>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
