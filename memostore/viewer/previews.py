"""HTML previews of stored values, for the call page and the calls table.

Values are loaded through the public ``storage.unwrap``; a store opened with
``allow_pickle=False`` refuses pickled values, which show as "pickled, not
loaded" instead of being unpickled (unpickling can run code).
"""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any, Iterable

import numpy as np
import pandas as pd
from markupsafe import Markup

from memostore import Ref, Storage, StoredFigure, UntrustedValueError

SHORT_CHARS = 60  # a value in the calls table is cut to this many characters
TEXT_CHARS = 4000  # a string or repr on the call page is cut to this many
TABLE_ROWS = 20  # arrays and DataFrames show at most this many rows ...
TABLE_COLUMNS = 12  # ... and columns
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOT_LOADED = "pickled, not loaded"


class _Unloaded:
    """A value the store would have to unpickle, or could not read."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Preview:
    """A value shown two ways: one line for tables, a block for the call page."""

    kind: str
    short: str
    html: Markup


def load_values(storage: Storage, refs: Iterable[Ref]) -> dict[str, Any]:
    """Values by ref hid, in one batch when none is refused; refused ones as ``_Unloaded``."""
    refs = list(refs)
    try:
        return dict(zip((ref.hid for ref in refs), storage.unwrap([ref.detached() for ref in refs]), strict=True))
    except Exception:  # a refused pickle, a missing blob, a class this process cannot import
        return {ref.hid: _load_one(storage, ref) for ref in refs}


def _load_one(storage: Storage, ref: Ref) -> Any:
    try:
        return storage.unwrap(ref.detached())
    except UntrustedValueError:
        return _Unloaded(NOT_LOADED)
    except Exception as err:  # the page shows why instead of failing
        return _Unloaded(f"not loaded: {type(err).__name__}: {err}")


def preview(value: Any) -> Preview:
    """How a value looks in the viewer, by its type."""
    if isinstance(value, _Unloaded):
        hint = " (start the viewer with --trust to load it)" if value.reason == NOT_LOADED else ""
        return Preview("unloaded", f"<{value.reason}>",
                       Markup('<span class="muted">{}</span>{}').format(value.reason, hint))
    if value is None or isinstance(value, (bool, int, float, complex, np.number, np.bool_)):
        text = repr(value.item() if isinstance(value, (np.number, np.bool_)) else value)  # 0.5, not np.float64(0.5)
        return Preview("number", text, Markup("<code>{}</code>").format(text))
    if isinstance(value, str):
        return Preview("string", _cut(repr(value), SHORT_CHARS), _pre(value))
    if isinstance(value, bytes) and value.startswith(PNG_MAGIC):
        return _image(value)
    if isinstance(value, StoredFigure):  # what an op's matplotlib figure is stored as
        return _image(value.png, "matplotlib figure")
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, pd.Series):
        return _table(value.to_frame(), f"Series, {len(value)} rows", "dataframe")
    if isinstance(value, pd.DataFrame):
        return _table(value, f"DataFrame, {value.shape[0]} rows x {value.shape[1]} columns", "dataframe")
    if _is_figure(value):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return _image(buffer.getvalue(), "matplotlib figure")
    try:
        text = repr(value)
    except Exception as err:  # a stored object's own repr may fail: the page must still show
        text = f"<{type(value).__name__}: its repr failed ({type(err).__name__})>"
    return Preview("object", _cut(text, SHORT_CHARS), _pre(text))


def _is_figure(value: Any) -> bool:
    return type(value).__module__.startswith("matplotlib") and hasattr(value, "savefig")


def _image(png: bytes, what: str = "PNG image") -> Preview:
    data = base64.b64encode(png).decode("ascii")
    return Preview("image", f"<{what}, {len(png):,} bytes>",
                   Markup('<img class="value" alt="{}" src="data:image/png;base64,{}">').format(what, data))


def _array(value: np.ndarray) -> Preview:
    shape = "x".join(str(n) for n in value.shape) or "scalar"
    title = f"array {shape}, {value.dtype}"
    if value.ndim in (1, 2) and value.dtype.kind in "biufcUSb?":
        return _table(pd.DataFrame(value), title, "array")
    return Preview("array", f"<{title}>", _pre(repr(value)))


def _table(frame: pd.DataFrame, title: str, kind: str) -> Preview:
    shown = frame.iloc[:TABLE_ROWS, :TABLE_COLUMNS]
    note = "" if shown.shape == frame.shape else f" (showing {shown.shape[0]} x {shown.shape[1]})"
    html = shown.to_html(classes="value", border=0, max_cols=TABLE_COLUMNS, escape=True)
    return Preview(kind, f"<{title}>", Markup('<div class="caption">{}{}</div>{}').format(title, note, Markup(html)))


def _pre(text: str) -> Markup:
    return Markup('<pre class="value">{}</pre>').format(_cut(text, TEXT_CHARS))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

