"""Tables for people: the versions table, source diffs, and value columns typed without changing a value."""

from __future__ import annotations

import difflib
import json
from typing import TYPE_CHECKING, Any

from memostore.errors import NotStoredError

if TYPE_CHECKING:
    import numpy as np

# Every int of at most this magnitude is exactly a float64; past it a float column rounds ints.
FLOAT_EXACT_INT_LIMIT = 2 ** 53


def exact_column(values: np.ndarray) -> Any:
    """A table's column of loaded values (None in missing rows), typed as pandas would, without changing a value.

    pandas alone makes ints with missing rows floats (``3`` shows as ``3.0``, and ints past
    2**53 are rounded). Here ints and bools with missing rows become pandas' nullable
    ``Int64`` and ``boolean`` (missing rows are ``<NA>``), ints that do not fit int64 stay
    Python ints (object), and any other column is typed as ``infer_objects`` types it,
    unless that would round an int.

    >>> import numpy as np
    >>> exact_column(np.array([3, None, 2 ** 53 + 1], dtype=object)).tolist()
    [3, <NA>, 9007199254740993]
    >>> exact_column(np.array([2 ** 64, None], dtype=object)).tolist()
    [18446744073709551616, None]
    """
    import numpy as np
    import pandas as pd

    if values.dtype != object:
        return values
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("integer", "boolean"):
        missing = pd.isna(values)
        # A stored NaN is a float, not a missing row: such a column is a float column.
        if all(value is None for value in values[missing]):
            return _nullable(values, missing, kind)
    inferred = pd.Series(values, copy=False).infer_objects()
    if inferred.dtype.kind == "f" and kind in ("integer", "mixed-integer-float") and any(
            abs(int(value)) > FLOAT_EXACT_INT_LIMIT for value in values if isinstance(value, (int, np.integer))):
        return values
    return inferred.array


def _nullable(values: np.ndarray, missing: np.ndarray, kind: str) -> Any:
    """A column of ints or bools, with None in ``missing`` rows: plain numpy when none is missing, else
    pandas' nullable array; ints past int64 stay as they are (Python ints, exact)."""
    import numpy as np
    import pandas as pd

    try:
        known = values[~missing].astype(np.bool_ if kind == "boolean" else np.int64)
    except OverflowError:
        return values
    if not missing.any():
        return known
    data = np.zeros(values.size, dtype=known.dtype)
    data[~missing] = known
    return pd.arrays.BooleanArray(data, missing) if kind == "boolean" else pd.arrays.IntegerArray(data, missing)


def versions_table(rows: list[dict[str, Any]], current: str | None) -> Any:
    """``storage.versions`` from the stored version rows of one op; ``current`` is None when the
    op's code is not loaded in this process: ``is_current`` is then unknown (``<NA>``), not False."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["version", "calls", "first_used", "last_used"])
    for column in ("first_used", "last_used"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    frame["is_current"] = pd.array([None] * len(frame) if current is None else frame["version"] == current,
                                   dtype="boolean")
    frame["dependencies"] = [[d["name"] for d in json.loads(r["dependencies"] or "[]")] for r in rows]
    return frame


def ops_table(rows_by_op: dict[str, list[dict[str, Any]]]) -> Any:
    """``storage.ops``: one row per op from the stored version rows of each."""
    import pandas as pd

    records = []
    for name, rows in rows_by_op.items():
        latest = max(rows, key=lambda r: r["last_used"]) if rows else None
        records.append({
            "op": name, "versions": len(rows), "calls": sum(r["calls"] for r in rows),
            "first_used": min((r["first_used"] for r in rows), default=None),
            "last_used": None if latest is None else latest["last_used"],
            "latest_version": None if latest is None else latest["version"],
        })
    frame = pd.DataFrame(records, columns=["op", "versions", "calls", "first_used", "last_used", "latest_version"])
    for column in ("first_used", "last_used"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def version_source(rows: list[dict[str, Any]], op_name: str, version: str | None) -> str:
    """The stored source of one version (a unique prefix), or of the most recently used one."""
    if not rows:
        raise NotStoredError(f"op {op_name!r} has no stored version")
    row = max(rows, key=lambda r: r["last_used"]) if version is None else pick_version(rows, version, op_name)
    if row["source"] is None:
        raise NotStoredError(f"op {op_name!r} version {row['version'][:8]} was stored without source "
                             "(Python could not read it; the version hashes its bytecode)")
    return str(row["source"])


def diff_versions(rows: list[dict[str, Any]], op_name: str, old_version: str, new_version: str) -> str:
    """A unified diff of the op's source and dependencies between two stored versions."""
    texts = [_version_text(pick_version(rows, v, op_name)) for v in (old_version, new_version)]
    return "".join(difflib.unified_diff(texts[0].splitlines(keepends=True), texts[1].splitlines(keepends=True),
                                        fromfile=f"{op_name}@{old_version[:8]}",
                                        tofile=f"{op_name}@{new_version[:8]}"))


def pick_version(rows: list[dict[str, Any]], version: str, op_name: str) -> dict[str, Any]:
    matches = [r for r in rows if r["version"].startswith(version)]
    if len(matches) != 1:
        known = ", ".join(r["version"][:8] for r in rows) or "none (the op has not been called with this store)"
        raise NotStoredError(f"op {op_name!r} has {len(matches)} stored versions matching {version!r}; "
                             f"stored: {known}")
    return matches[0]


def _version_text(row: dict[str, Any]) -> str:
    parts = [f"# op source\n{row['source'] or '(source not available)'}"]
    for dependency in json.loads(row["dependencies"] or "[]"):
        parts.append(f"# {dependency['kind']} {dependency['name']}\n{dependency['source']}")
    return "\n".join(part if part.endswith("\n") else part + "\n" for part in parts)


def hide_password(url: str) -> str:
    """The URL with any password masked, for messages and reprs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def human_bytes(size: int) -> str:
    """1234567 -> '1.2 MB'."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
