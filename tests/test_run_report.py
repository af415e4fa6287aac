"""HTML reports of runs and frames: one self-contained file, from the store alone, with provenance."""

from __future__ import annotations

import re
import socket

import matplotlib
import pandas as pd
import pytest

from memostore import ReportWriteError, Storage, op

matplotlib.use("Agg")
EXECUTED: list[str] = []


@op
def prepare(n):
    EXECUTED.append("prepare")
    return pd.DataFrame({"x": range(n), "y": [v * v for v in range(n)]})


@op
def fit(data, degree):
    EXECUTED.append("fit")
    return float(data["y"].sum()) / (degree + 1)


@op
def figure_of(data):
    from matplotlib.figure import Figure

    EXECUTED.append("figure_of")
    figure = Figure(figsize=(3, 2))
    figure.subplots().plot(data["x"], data["y"])
    return figure


class Opaque:
    def __init__(self, n):
        self.n = n


@op
def opaque(n):
    return Opaque(n)


def build(storage: Storage) -> tuple[int, int]:
    with storage.run("small", tags={"size": "4"}):
        data = prepare(4)
        fit(data, 1)
        figure_of(data)
    small = storage.last_run.run_id
    with storage.run("large", tags={"size": "6"}):
        data = prepare(6)
        fit(data, 1)
        figure_of(data)
    return small, storage.last_run.run_id


def test_a_run_report_is_one_self_contained_file_with_provenance(tmp_path):
    storage = Storage(db_path=tmp_path / "store.db")
    small, _ = build(storage)
    EXECUTED.clear()
    path = storage.report(small, tmp_path / "small.html")
    page = (tmp_path / "small.html").read_text(encoding="utf-8")
    assert path == str(tmp_path / "small.html") and EXECUTED == []  # nothing ran again
    assert "<style>" in page and "<svg" in page and "<script" not in page
    assert not re.search(r"""(src|href)=['"]https?:""", page)  # nothing fetched from elsewhere
    assert "data:image/png;base64," in page  # the figure
    for call in storage.run_calls(small):
        assert call.hid[:12] in page and call.version[:12] in page
    assert f"run {small} (small) on {socket.gethostname()}" in page
    assert "size=4" in page and "def fit(data, degree):" in page  # tags, stored source
    assert "<td>0</td>" in page or ">0<" in page  # the DataFrame's cells


def test_a_comparison_report_of_several_runs_and_a_report_of_a_frame(tmp_path):
    storage = Storage(db_path=tmp_path / "store.db")
    small, large = build(storage)
    storage.report([small, "large"], tmp_path / "both.html")
    page = (tmp_path / "both.html").read_text(encoding="utf-8")
    assert "Runs small, large" in page and page.count("data:image/png;base64,") == 2
    frame = storage.cf(fit).expand_back(recursive=True)
    storage.report(frame, tmp_path / "frame.html", title="Every fit")
    page = (tmp_path / "frame.html").read_text(encoding="utf-8")
    assert "Every fit" in page and page.count("<h2 id='op-fit'>") == 1
    assert "found stored" not in page


def test_an_untrusted_store_reports_pickles_without_loading_them(tmp_path):
    storage = Storage(db_path=tmp_path / "store.db")
    with storage.run("opaque"):
        opaque(3)
    storage.close()
    reader = Storage(db_path=tmp_path / "store.db", allow_pickle=False)
    reader.report("opaque", tmp_path / "opaque.html")
    page = (tmp_path / "opaque.html").read_text(encoding="utf-8")
    assert "not loaded here: UntrustedValueError" in page


def test_a_report_creates_its_folder_and_names_a_path_it_cannot_write(tmp_path):
    storage = Storage(db_path=tmp_path / "store.db")
    with storage.run("small"):
        prepare(2)
    path = storage.report("small", tmp_path / "reports" / "2026" / "small.html")
    assert "prepare" in (tmp_path / "reports" / "2026" / "small.html").read_text(encoding="utf-8")
    assert path == str(tmp_path / "reports" / "2026" / "small.html")
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(ReportWriteError, match="cannot write '.*taken/small.html'") as raised:
        storage.report("small", tmp_path / "taken" / "small.html")
    assert isinstance(raised.value, OSError)
    with pytest.raises(ReportWriteError, match="cannot write"):
        storage.report("small", tmp_path / "reports")  # a folder, not a file
