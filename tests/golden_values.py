"""A broad sample of values whose content ids are pinned (see test_hashing_golden.py).

Kept importable on its own so that a subprocess can rebuild exactly these values.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import uuid

import numpy as np
import pandas as pd


@dataclasses.dataclass
class GoldenPoint:
    x: int
    y: float


class GoldenColor(enum.Enum):
    RED = 1


class GoldenPlain:
    def __init__(self) -> None:
        self.name = "plain"
        self.items = [1, 2.5, "three"]
        self.mapping = {"b": 2, "a": 1}


def golden_values() -> dict[str, object]:
    """Name -> value; every entry hashes the same in every process and release."""
    return {
        "none": None, "true": True, "false": False,
        "int_0": 0, "int_neg": -7, "int_big": 2**200, "int_big_neg": -(2**100),
        "float": 0.5, "float_neg_zero": -0.0, "float_nan": float("nan"), "float_inf": float("inf"),
        "complex": 1.5 - 2j,
        "str_empty": "", "str": "memostore", "str_unicode": "h\u00e9llo \u2603 \U0001f600",
        "bytes_empty": b"", "bytes": b"\x00\x01\xff",
        "list_empty": [], "list": [1, "a", None, 2.5], "tuple": (1, (2, 3)), "tuple_empty": (),
        "dict": {"a": 1, "b": [2, 3]}, "dict_int_keys": {1: "x", 2: "y"}, "dict_nested": {"k": {"j": (1,)}},
        "set": {1, 2, 3}, "set_str": {"a", "b", "c"}, "frozenset": frozenset({4, 5}),
        "array_int64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "array_float32": np.linspace(0, 1, 5, dtype=np.float32),
        "array_bool": np.array([True, False, True]),
        "array_uint8": np.arange(10, dtype=np.uint8),
        "array_complex": np.array([1 + 2j, 3 - 4j]),
        "array_str": np.array(["a", "bc"]),
        "array_datetime": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        "array_fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "array_structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "array_object": np.array([1, "a", None], dtype=object),
        "array_empty": np.zeros((0, 3)),
        "np_float64": np.float64(1.25), "np_int32": np.int32(-3), "np_bool": np.bool_(True),
        "frame": pd.DataFrame({"x": [1, 2], "y": [0.5, 1.5]}),
        "frame_str": pd.DataFrame({"s": ["a", "b"], "n": [1.0, None]}, index=[10, 20]),
        "series": pd.Series([1.0, 2.0, 3.0], name="s"),
        "series_str_index": pd.Series([1, 2], index=["a", "b"]),
        "index": pd.Index([3, 1, 2], name="i"),
        "range_index": pd.RangeIndex(5),
        "datetime_index_nofreq": pd.DatetimeIndex(["2024-01-01", "2024-01-05"]),
        "frame_dates": pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "v": [1, 2]}),
        "dataclass": GoldenPoint(1, 2.5),
        "enum": GoldenColor.RED,
        "plain_object": GoldenPlain(),
        "date": datetime.date(2024, 2, 29),
        "datetime": datetime.datetime(2024, 2, 29, 12, 30, 5, 123),
        "timedelta": datetime.timedelta(days=1, seconds=5),
        "decimal": decimal.Decimal("1.10"),
        "fraction": fractions.Fraction(3, 7),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "timestamp": pd.Timestamp("2024-01-01 12:00"),
        "range": range(3, 10, 2),
        "slice": slice(1, 5),
    }
