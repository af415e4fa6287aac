"""Rich notebook output: the HTML of refs, calls, stores, frames and lineages, parsed and read back.

The last test executes a real notebook (nbclient, an IPython kernel) and reads
what Jupyter would show, including ``storage.map``'s progress bar.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser

import pytest

from memostore import Storage, op

from helpers import REPO_ROOT, require_dot


class Page(HTMLParser):
    """The text of an HTML fragment, with a check that every tag it opens is closed, in order."""

    VOID = {"br", "hr", "img", "meta", "input", "link"}

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.open: list[str] = []
        self.texts: list[str] = []
        self.tags: list[str] = []
        self.titles: list[str] = []
        self.feed(markup)
        self.close()
        assert not self.open, f"unclosed tags: {self.open}"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.titles += [value for name, value in attrs if name == "title"]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] not in ("style",):
            self.texts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


@op
def add(a, b):
    return a + b


@op(output_names=["low", "high"])
def split(x):
    return x // 2, x - x // 2


@op
def shout(text):
    return text.upper()


@pytest.fixture
def stored():
    storage = Storage()
    with storage:
        low, high = split(7)
        total = add(low, high)
    return storage, total


def test_ref_shows_its_value_or_not_loaded(stored):
    storage, total = stored
    page = Page(total._repr_html_())
    assert "value 7" in page.text and total.hid in page.titles and total.cid in page.titles
    lazy = Page(total.detached()._repr_html_())
    assert "not loaded" in lazy.text and "7" not in lazy.text.split("hid")[0]


def test_ref_preview_is_escaped_and_short():
    storage = Storage()
    with storage:
        loud = shout("<script>alert(1)</script>" + "x" * 1000)
    markup = loud._repr_html_()
    assert "<script>" not in markup and "&lt;SCRIPT&gt;" in markup
    assert len(Page(markup).text) < 400


def test_call_shows_op_version_inputs_outputs_status_and_duration(stored):
    storage, total = stored
    call = storage.get_ref_creator(total)
    page = Page(call._repr_html_())
    for expected in ("Call of add", "op add", "status ok", "started", "UTC", "duration", " s ", "inputs a",
                     "b", "outputs output_0"):
        assert expected in page.text, expected
    assert call.version in page.titles and call.hid in page.titles
    assert page.text.count("not loaded") == 3  # a stored call's refs are lazy: nothing is loaded to show it


def test_failed_call_shows_its_error(tmp_path):
    @op
    def fragile(x):
        raise ValueError(f"bad {x}")

    storage = Storage(db_path=tmp_path / "runs.db")
    storage.map(fragile, [{"x": 1}], on_error="record", progress=False)
    failed = storage.failures(fragile)["call"].iloc[0]
    page = Page(failed._repr_html_())
    assert "status failed" in page.text and "ValueError: bad 1" in page.text and "traceback" in page.text


def test_storage_shows_location_counts_size_and_ops(stored, tmp_path):
    storage, _ = stored
    page = Page(storage._repr_html_())
    assert "location in memory" in page.text
    assert "calls 2" in page.text and "values" in page.text and "bytes" in page.text
    assert "op stored calls" in page.text and "add 1" in page.text and "split 1" in page.text
    on_disk = Storage(db_path=tmp_path / "runs.db")
    assert "runs.db" in Page(on_disk._repr_html_()).text


def test_frame_shows_its_drawing_and_node_counts(stored):
    storage, _ = stored
    require_dot()
    page = Page(storage.cf(add).expand_all()._repr_html_())
    assert "svg" in page.tags
    assert "variable a 1 ref" in page.text and "op add 1 call" in page.text and "op split 1 call" in page.text
    assert "ComputationFrame with:" in page.text  # the text form, folded


def test_frame_without_dot_says_how_to_get_it(stored, tmp_path, monkeypatch):
    storage, _ = stored
    monkeypatch.setenv("PATH", str(tmp_path))
    page = Page(storage.cf(add).expand_all()._repr_html_())
    assert "svg" not in page.tags and "apt-get install graphviz" in page.text
    assert "op add 1 call" in page.text


def test_lineage_is_an_indented_tree(stored):
    storage, total = stored
    markup = storage.lineage(total)._repr_html_()
    page = Page(markup)
    assert page.text.index("add") < page.text.index("split") < page.text.index("a value passed in")
    assert 'padding-left:1.5em' in markup and 'padding-left:3.0em' in markup


def test_notebook_shows_html_and_a_progress_bar(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cells = [
        "from memostore import Storage, op\n"
        "@op\ndef square(x):\n    return x * x\n"
        "storage = Storage(db_path='runs.db')\n"
        "refs = storage.map(square, [{'x': i} for i in range(5)])",
        "storage",
        "refs[2]",
        "storage.get_ref_creator(refs[2])",
        "storage.cf(square)",
        "storage.lineage(refs[2])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in cells])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    run, shown_storage, ref, call, frame, lineage = [cell.outputs for cell in notebook.cells]
    stderr = "".join(o.get("text", "") for o in run if o.get("name") == "stderr")
    assert "square: 100%" in stderr and "5/5" in stderr and "IProgress not found" not in stderr
    html = [outputs[0]["data"]["text/html"] for outputs in (shown_storage, ref, call, frame, lineage)]
    assert "square 5" in Page(html[0]).text
    assert "value 4" in Page(html[1]).text
    assert "Call of square" in Page(html[2]).text
    assert "op square 5 calls" in Page(html[3]).text
    assert "square@" in Page(html[4]).text


def test_lineage_html_reads_any_columns_it_is_given():
    from memostore.notebook import lineage_html

    rows = [{"parent": None, "ref": "aa11", "op": "add", "version": "v1", "output": "output_0", "note": "root"},
            {"parent": 0, "ref": "bb22", "via": "a", "op": "split", "version": "v2", "output": "low", "repeated": True},
            {"parent": 1, "ref": "cc33", "via": "x", "op": None, "value": 7, "note": float("nan")}]
    markup = lineage_html(rows, ["parent", "ref", "via", "op", "version", "output", "value", "repeated", "note"])
    page = Page(markup)
    assert page.text.startswith("Lineage step note ref aa11 = add@v1.output_0 root")
    assert "a bb22 = split@v2.low (its inputs are shown above)" in page.text
    assert "x cc33 a value passed in: 7" in page.text
    assert "padding-left:1.5em" in markup and "padding-left:3.0em" in markup
