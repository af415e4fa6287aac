"""Drawing a ComputationFrame's graph with graphviz (an optional dependency)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from memostore.cf.graph import IN, FrameGraph
from memostore.errors import FrameArgumentError, GraphvizMissingError, ReportWriteError
from memostore.notebook import block, escape, muted, table

if TYPE_CHECKING:
    import graphviz

RENDER_FORMATS = ("svg", "png", "pdf")
GET_DOT = ("Graphviz's dot program is not on PATH: install Graphviz (apt-get install graphviz, "
           "brew install graphviz, conda install graphviz, or https://graphviz.org/download/), "
           "or call draw() without path= to get the graph's source")
_VAR_STYLE = {"shape": "box", "style": "rounded", "color": "#4c72b0", "fontname": "Helvetica"}
_OP_STYLE = {"shape": "box", "style": "filled", "fillcolor": "#fde7c8", "color": "#c47f17",
             "fontname": "Helvetica-Bold"}


def draw_graph(graph: FrameGraph, verbose: bool = False, path: str | Path | None = None) -> graphviz.Digraph:
    """A ``graphviz.Digraph`` of variables (rounded) and ops (filled).

    With ``verbose``, each node also shows how many refs or calls it holds.
    ``path`` writes the drawing too, in the format its suffix names
    (.svg, .png or .pdf; its folder is created if missing), which needs
    Graphviz's ``dot`` program: without it, ``GraphvizMissingError`` says
    how to install it. A path that cannot be written raises ``ReportWriteError``.

    >>> from memostore import Storage, op
    >>> @op
    ... def halve(x):
    ...     return x / 2
    >>> storage = Storage()
    >>> with storage:
    ...     half = halve(3)
    >>> print(storage.cf(halve).draw(verbose=True).source)  # doctest: +ELLIPSIS
    digraph {
    ...
        op__halve [label="halve
    1 call" ...]
        var__x -> op__halve [label=x]
    ...
    """
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissingError(
            "drawing a frame needs the graphviz package: pip install 'memostore[draw]'") from None
    dot = graphviz.Digraph(graph_attr={"rankdir": "TB"}, edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for name, refs in sorted(graph.vars.items()):
        label = f"{name}\n{_count(len(refs), 'ref')}" if verbose else name
        dot.node(_node_id("var", name), label=label, **_VAR_STYLE)
    for name, calls in sorted(graph.ops.items()):
        label = f"{name}\n{_count(len(calls), 'call')}" if verbose else name
        dot.node(_node_id("op", name), label=label, **_OP_STYLE)
    for edge in sorted(graph.edges, key=lambda e: (e.op_node, e.direction, e.name)):
        var, op = _node_id("var", edge.var), _node_id("op", edge.op_node)
        tail, head = (var, op) if edge.direction == IN else (op, var)
        dot.edge(tail, head, label=edge.name)
    if path is not None:
        _write(dot, Path(path))
    return dot


def has_dot() -> bool:
    """Whether Graphviz's ``dot`` program can be run (drawings render only then)."""
    return shutil.which("dot") is not None


def render(dot: graphviz.Digraph, fmt: str) -> bytes:
    """The drawing rendered by ``dot``; ``GraphvizMissingError`` if ``dot`` is missing."""
    if not has_dot():
        raise GraphvizMissingError(GET_DOT)
    return bytes(dot.pipe(format=fmt))


def _write(dot: graphviz.Digraph, path: Path) -> None:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in RENDER_FORMATS:
        raise FrameArgumentError(f"draw(path=...) writes {', '.join(RENDER_FORMATS)} files; got {path.name!r}")
    drawing = render(dot, fmt)
    try:  # creating the folder, as storage.report and storage.backup do: a drawing goes where it is asked to
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(drawing)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(path) else ""
        raise ReportWriteError(f"cf.draw(path=...) cannot write {str(path)!r}: {err.strerror or err}{where}; give "
                               "a file path in a folder you can write to (a missing folder is created)") from err


def _node_id(kind: str, name: str) -> str:
    # No colons: graphviz reads "a:b" as node a, port b.
    return f"{kind}__{name}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def frame_html(graph: FrameGraph, text: str) -> str:
    """A frame in a notebook: its drawing (where ``dot`` exists), its nodes with their counts, its text form."""
    nodes = table(
        [(escape("variable"), f"<code>{escape(name)}</code>", escape(_count(len(refs), "ref")))
         for name, refs in sorted(graph.vars.items())]
        + [(escape("op"), f"<code>{escape(name)}</code>" + _op_suffix(graph, name), escape(_count(len(calls), "call")))
           for name, calls in sorted(graph.ops.items())],
        header=("node", "name", "holds"))
    summary = muted(f"{_count(len(graph.vars), 'variable')}, {_count(len(graph.ops), 'op')}")
    details = f"<details><summary>as text</summary><pre>{escape(text)}</pre></details>"
    return block("ComputationFrame", f"<div>{summary}</div>", _svg(graph), nodes, details)


def _op_suffix(graph: FrameGraph, node: str) -> str:
    op_name = graph.op_names[node]
    return "" if op_name == node else f" ({escape(op_name)})"


def _svg(graph: FrameGraph) -> str:
    """The drawing as inline SVG, or a note on how to get one."""
    try:
        svg = render(draw_graph(graph, verbose=True), "svg").decode("utf-8")
    except GraphvizMissingError as err:
        return f"<div>{muted(f'No drawing: {err}')}</div>"
    return "<div>" + svg[svg.find("<svg"):] + "</div>"
