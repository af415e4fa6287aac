"""How the viewer shows values: tables for arrays and DataFrames, cut text, images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("starlette", reason='pip install -e ".[viewer]" to test the viewer')

from memostore import Storage, op  # noqa: E402
from memostore.viewer.previews import (  # noqa: E402
    PNG_MAGIC,
    TABLE_ROWS,
    TEXT_CHARS,
    load_values,
    preview,
)


@op
def make(kind):
    return {"set": {1, 2}, "categorical": pd.DataFrame({"c": pd.Categorical(["a"])})}[kind]


def test_numbers_and_strings_show_as_text_cut_to_a_length():
    assert preview(3).short == "3" and preview(np.float64(0.5)).html == "<code>0.5</code>"
    long = preview("x" * (TEXT_CHARS * 2))
    assert long.kind == "string" and len(long.short) == 60 and long.html.count("x") < TEXT_CHARS
    assert "&lt;b&gt;" in preview("<b>").html  # values are escaped, never markup


def test_arrays_and_frames_show_as_tables_of_their_first_rows():
    big = preview(pd.DataFrame({"a": range(100), "b": range(100)}))
    assert big.kind == "dataframe" and big.short == "<DataFrame, 100 rows x 2 columns>"
    assert f"showing {TABLE_ROWS} x 2" in big.html
    assert f"<th>{TABLE_ROWS - 1}</th>" in big.html and f"<th>{TABLE_ROWS}</th>" not in big.html
    assert preview(np.eye(3)).short == "<array 3x3, float64>" and "<table" in preview(np.eye(3)).html
    cube = preview(np.zeros((2, 2, 2)))
    assert "<table" not in cube.html and "array(" in cube.html
    assert preview(pd.Series([1, 2], name="s")).kind == "dataframe"


def test_png_bytes_show_as_an_image():
    image = preview(PNG_MAGIC + b"rest")
    assert image.kind == "image" and 'src="data:image/png;base64,' in image.html


def test_values_a_store_would_unpickle_are_not_loaded_without_trust(tmp_path):
    with Storage(db_path=tmp_path / "runs.db"):
        refs = [make("set"), make("categorical")]
    untrusted = Storage(db_path=tmp_path / "runs.db", allow_pickle=False)
    shown = {hid: preview(value) for hid, value in load_values(untrusted, refs).items()}
    assert shown[refs[0].hid].short == "{1, 2}"  # plain data loads without pickle
    assert shown[refs[1].hid].short == "<pickled, not loaded>"
    trusted = load_values(Storage(db_path=tmp_path / "runs.db"), refs)
    assert preview(trusted[refs[1].hid]).kind == "dataframe"
