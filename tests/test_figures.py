"""Figures returned by ops are stored as their images and come back the same whether computed or found."""

from __future__ import annotations

import matplotlib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import CorruptValueError, FigureFormatError, Storage, StoredFigure, op
from memostore.serialization import dumps, loads

matplotlib.use("Agg")


@op
def line_plot(n):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.subplots().plot(range(n))
    return figure


def test_a_returned_figure_is_stored_as_images_and_loads_without_pickle(tmp_path):
    storage = Storage(db_path=tmp_path / "figs.db")
    with storage:
        computed = storage.unwrap(line_plot(4))
    assert isinstance(computed, StoredFigure)
    assert computed.png.startswith(b"\x89PNG") and computed.svg is not None and "<svg" in computed.svg
    storage.close()
    untrusted = Storage(db_path=tmp_path / "figs.db", allow_pickle=False)
    with untrusted:
        loaded = untrusted.unwrap(line_plot(4))
    assert untrusted.last_run.computed == 0 and loaded == computed
    computed.save(tmp_path / "plot.png")
    computed.save(tmp_path / "plot.svg")
    assert (tmp_path / "plot.png").read_bytes() == computed.png
    assert (tmp_path / "plot.svg").read_text(encoding="utf-8") == computed.svg


def test_drawing_the_same_figure_twice_gives_the_same_value():
    first, second = StoredFigure.of(line_plot.func(5)), StoredFigure.of(line_plot.func(5))
    assert first == second


@given(st.binary(), st.one_of(st.none(), st.text()))
def test_figure_bytes_round_trip(png, svg):
    figure = StoredFigure(png, svg)
    format_name, data = dumps(figure)
    assert format_name == "user:memostore-figure"
    assert loads(format_name, data, allow_pickle=False) == figure


def test_damaged_figure_bytes_are_refused():
    format_name, data = dumps(StoredFigure(b"png", "<svg/>"))
    with pytest.raises(CorruptValueError):
        loads(format_name, data[:-20] + b"x" * 3, allow_pickle=False)


def test_saving_names_the_formats_a_stored_figure_has(tmp_path):
    figure = StoredFigure(b"\x89PNG fake", None)  # stored without its SVG rendering
    with pytest.raises(FigureFormatError, match="without an SVG rendering.*as .png"):
        figure.save(tmp_path / "plot.svg")
    with pytest.raises(FigureFormatError, match=r"saved as .png or .svg, got '.*plot.jpg'") as raised:
        figure.save(tmp_path / "plot.jpg")  # was PNG bytes in a file named .jpg
    assert isinstance(raised.value, ValueError) and not (tmp_path / "plot.jpg").exists()
    figure.save(tmp_path / "plot.PNG")
    assert (tmp_path / "plot.PNG").read_bytes() == figure.png
