"""Figures as stored values: an op that returns a matplotlib ``Figure`` stores its images.

A matplotlib figure is a live object of the library that drew it: pickling
it ties the store to that library and loading it runs code. What people
want back from a stored figure is the picture, so the call path stores a
returned figure as a ``StoredFigure`` (its PNG and SVG renderings, a format
of its own that loads without pickle), and hands the same ``StoredFigure``
back when the call is computed and when it is found stored. Notebooks, the
viewer and HTML reports show it; ``save`` writes it to a file.

matplotlib is needed only to render a figure, which an op that made one has
already imported; nothing here imports it.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from memostore.errors import CorruptValueError, FigureFormatError
from memostore.hashing import register_hasher
from memostore.serialization import register_serializer

FORMAT_NAME = "memostore-figure"  # stored as "user:memostore-figure"
_MAGIC = b"MSFIG1"
_LENGTHS = struct.Struct("<QQ")  # bytes of the PNG, bytes of the SVG
PNG_DPI = 100


class StoredFigure:
    """A figure kept as images: ``png`` (bytes) and ``svg`` (text, or None).

    >>> figure = StoredFigure(b"\\x89PNG...", "<svg/>")
    >>> figure
    StoredFigure(png=7 bytes, svg=6 characters)
    """

    def __init__(self, png: bytes, svg: str | None = None) -> None:
        self.png = bytes(png)
        self.svg = svg

    @classmethod
    def of(cls, figure: Any) -> StoredFigure:
        """The images of a matplotlib figure, drawn the same way every time (no dates, fixed ids).

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from matplotlib.figure import Figure
        >>> from memostore import StoredFigure
        >>> figure = Figure(figsize=(2, 2))
        >>> _ = figure.subplots().plot([1, 2, 3])
        >>> stored = StoredFigure.of(figure)
        >>> stored.png[:4], "<svg" in stored.svg, stored == StoredFigure.of(figure)
        (b'\\x89PNG', True, True)
        """
        import matplotlib

        with matplotlib.rc_context({"svg.hashsalt": "memostore", "svg.fonttype": "path"}):
            png, svg = io.BytesIO(), io.StringIO()
            figure.savefig(png, format="png", dpi=PNG_DPI, metadata={"Software": None})
            figure.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        return cls(png.getvalue(), svg.getvalue())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the figure to ``path``: SVG if it ends in ``.svg``, else PNG (other suffixes are refused).

        An op that returns a matplotlib figure gives back a StoredFigure:

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import pathlib, tempfile
        >>> from matplotlib.figure import Figure
        >>> from memostore import Storage, op
        >>> @op
        ... def doc_line_plot(n):
        ...     figure = Figure(figsize=(2, 2))
        ...     figure.subplots().plot(range(n))
        ...     return figure
        >>> storage = Storage()
        >>> with storage:
        ...     stored = storage.unwrap(doc_line_plot(3))
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> stored.save(folder / "plot.png")
        >>> stored.save(folder / "plot.svg")
        >>> (folder / "plot.png").read_bytes()[:4], "<svg" in (folder / "plot.svg").read_text()
        (b'\\x89PNG', True)
        """
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in ("", ".png", ".svg"):
            raise FigureFormatError(f"a stored figure is saved as .png or .svg, got {os.fspath(path)!r}; "
                                    "convert the PNG with an image tool for other formats")
        if suffix == ".svg":
            if self.svg is None:
                raise FigureFormatError(f"this figure was stored without an SVG rendering; save {os.fspath(path)!r} "
                                        "as .png")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(self.svg)
        else:
            with open(path, "wb") as handle:
                handle.write(self.png)

    def _repr_png_(self) -> bytes:
        return self.png

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredFigure) and (self.png, self.svg) == (other.png, other.svg)

    def __hash__(self) -> int:
        return hash((self.png, self.svg))

    def __repr__(self) -> str:
        svg = "none" if self.svg is None else f"{len(self.svg)} characters"
        return f"StoredFigure(png={len(self.png)} bytes, svg={svg})"


def is_matplotlib_figure(value: Any) -> bool:
    """Whether ``value`` is a matplotlib ``Figure`` (without importing matplotlib)."""
    cls = type(value)
    return cls.__module__.startswith("matplotlib") and cls.__name__ == "Figure" and hasattr(value, "savefig")


def storable_figure(value: Any) -> Any:
    """``value``, or its ``StoredFigure`` if it is a matplotlib figure (what the call path stores)."""
    return StoredFigure.of(value) if is_matplotlib_figure(value) else value


def _dump(figure: StoredFigure) -> bytes:
    svg = b"" if figure.svg is None else figure.svg.encode("utf-8")
    return _MAGIC + _LENGTHS.pack(len(figure.png), len(svg) if figure.svg is not None else 2**64 - 1) \
        + figure.png + svg


def _load(data: bytes) -> StoredFigure:
    head = len(_MAGIC) + _LENGTHS.size
    if data[:len(_MAGIC)] != _MAGIC or len(data) < head:
        raise CorruptValueError("damaged figure value: it does not start as memostore writes figures")
    png_bytes, svg_bytes = _LENGTHS.unpack_from(data, len(_MAGIC))
    no_svg = svg_bytes == 2**64 - 1
    if head + png_bytes + (0 if no_svg else svg_bytes) != len(data):
        raise CorruptValueError("damaged figure value: its lengths do not match its bytes")
    png = data[head:head + png_bytes]
    return StoredFigure(png, None if no_svg else data[head + png_bytes:].decode("utf-8"))


register_hasher(StoredFigure, lambda figure: (figure.png, figure.svg))
register_serializer(StoredFigure, FORMAT_NAME, _dump, _load)
