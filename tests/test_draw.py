"""Drawing frames with graphviz, rendered for real by dot."""

from __future__ import annotations

import pytest

from memostore import FrameArgumentError, GraphvizMissingError, ReportWriteError, Storage, op

from helpers import require_dot


@op
def double(x):
    return 2 * x


@op
def add(a, b):
    return a + b


@pytest.fixture
def frame():
    storage = Storage()
    with storage:
        add(double(1), double(2))
    return storage.cf(add).expand_all()


def test_draw_returns_a_digraph_with_every_node_and_edge(frame):
    dot = frame.draw()
    source = dot.source
    for name in [*frame.vars, *frame.ops]:
        assert name in source
    assert "label=a" in source and "label=output_0" in source


def test_verbose_shows_counts(frame):
    source = frame.draw(verbose=True).source
    assert "1 call" in source and "1 ref" in source and "double_1" in source


@pytest.mark.parametrize("suffix, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_draw_writes_files_by_suffix(frame, tmp_path, suffix, magic):
    require_dot()
    path = tmp_path / f"frame.{suffix}"
    frame.draw(path=str(path))
    assert path.read_bytes().startswith(magic)


def test_draw_creates_the_folder_of_its_path_as_report_does(frame, tmp_path):
    require_dot()
    path = tmp_path / "figures" / "new" / "frame.svg"
    frame.draw(path=str(path))
    assert path.read_bytes().startswith(b"<?xml")


def test_a_path_that_cannot_be_written_is_named(frame, tmp_path):
    require_dot()
    (tmp_path / "notes").write_text("a file, not a folder")
    with pytest.raises(ReportWriteError, match=r"cf.draw\(path=...\) cannot write '.*notes/frame.svg'.*notes\)"):
        frame.draw(path=str(tmp_path / "notes" / "frame.svg"))


def test_unknown_suffix_is_rejected(frame, tmp_path):
    with pytest.raises(ValueError, match="svg, png, pdf"):
        frame.draw(path=str(tmp_path / "frame.bmp"))
    with pytest.raises(FrameArgumentError, match="'frame.jpg'"):
        frame.draw(path=str(tmp_path / "frame.jpg"))


def test_without_dot_drawing_to_a_file_says_how_to_install_graphviz(frame, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH where no dot program lives
    with pytest.raises(GraphvizMissingError, match="apt-get install graphviz") as caught:
        frame.draw(path=str(tmp_path / "frame.svg"))
    assert isinstance(caught.value, RuntimeError)
    assert not (tmp_path / "frame.svg").exists()
    assert "add" in frame.draw().source  # the graph itself needs no dot
