"""A varied sample of ops whose version ids the tests pin under every Python.

Run as a script (``python version_sample.py [db_path or db_url]``) it versions its ops
with ``deps_path="__main__"``, calls each once, and prints a JSON line
``{"versions": {...}, "computed": [...]}``; imported, ``versions(storage)``
does the same with ``deps_path`` set to its module name. The versions must
be equal both ways and under every Python 3.10-3.13.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from memostore import NewArgDefault, Storage, op

SCALE = 3
LABELS = ("low", "high")
COMPUTED: list[str] = []


def helper(x):
    """Scale a number."""
    return x * SCALE


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of a run."""

    rate: float = 0.5
    name: str = "base"

    def scaled(self, x: float) -> float:
        return helper(x) * self.rate


@op
def annotated(x: int, ys: tuple[int, ...] = ()) -> dict[str, int]:
    """Annotations and docstrings do not count."""
    COMPUTED.append("annotated")
    return {"x": x, "total": sum(ys) + x}


@op
def configured(x: float, config: Config | None = None) -> float:
    COMPUTED.append("configured")
    config = config if config is not None else Config(rate=0.25)
    return config.scaled(x)


@op
def grown(x, factor=NewArgDefault(2)):
    COMPUTED.append("grown")
    return helper(x) * factor


@op
def matcher(value):
    COMPUTED.append("matcher")
    match value:
        case {"k": inner, **rest}:
            return ("mapping", inner, len(rest))
        case [first, *others] if first:
            return ("sequence", first, len(others))
        case Config(rate=rate) | Config(name=rate):
            return ("config", rate)
        case None | True:
            return ("singleton",)
        case _:
            return ("other", value)


@op
def walrus(xs):
    COMPUTED.append("walrus")
    return [y for x in xs if (y := helper(x)) > 2]


@op
def formatted(x, width=8):
    COMPUTED.append("formatted")
    text = f"{x!r:>{width}}|{x=}|{x:.2f}|" + f'{"nested"} {LABELS[0]!s}' "tail"
    return text + b"bytes".decode() + "\u00e9"


@op
def lambdas(xs):
    COMPUTED.append("lambdas")
    key = lambda v: -v  # noqa: E731
    return sorted(xs, key=key), list(map(lambda v, w=1: v + w, xs))


@op
def variadic(*args, scale=1, **kwargs):
    COMPUTED.append("variadic")
    return [a * scale for a in args], {k: v for k, v in sorted(kwargs.items())}


@op(output_names=list(LABELS))
def split(xs: list[float], /, threshold=0.0, *, strict: bool = False) -> tuple[list, list]:
    COMPUTED.append("split")
    low, high = [], []
    for x in xs:
        try:
            (low if (x < threshold if strict else x <= threshold) else high).append(x)
        except TypeError as err:
            raise ValueError(str(err)) from None
        finally:
            pass
    with open(__file__) as _:
        pass
    return low, high


twice = op(lambda x: COMPUTED.append("twice") or x * 2, name="twice")

OPS = (annotated, configured, grown, matcher, walrus, formatted, lambdas, variadic, split, twice)
CALLS: tuple[tuple[Any, tuple[Any, ...], dict[str, Any]], ...] = (
    (annotated, (1,), {"ys": (2, 3)}),
    (configured, (2.0,), {}),
    (grown, (1,), {}),
    (matcher, ({"k": 1, "j": 2},), {}),
    (walrus, ([0, 1, 2],), {}),
    (formatted, (1.5,), {}),
    (lambdas, ([3, 1, 2],), {}),
    (variadic, (1, 2), {"scale": 2, "b": 3}),
    (split, ([-1.0, 0.0, 2.0],), {}),
    (twice, (4,), {}),
)


def versions(storage: Storage) -> dict[str, str]:
    """Each sample op's version in ``storage`` (which should track this module)."""
    return {o.name: storage.version_of(o) for o in OPS}


def run(storage: Storage) -> dict[str, Any]:
    """Call every sample op once in ``storage``; the versions and which ops computed."""
    COMPUTED.clear()
    with storage:
        for function, args, kwargs in CALLS:
            function(*args, **kwargs)
    return {"versions": versions(storage), "computed": sorted(COMPUTED)}


def open_storage(location: str | None, deps_path: str | None) -> Storage:
    """A storage at a file path or a database URL (None: in memory)."""
    if location is not None and "://" in location:
        return Storage(db_url=location, deps_path=deps_path)
    return Storage(db_path=location, deps_path=deps_path)


if __name__ == "__main__":
    print(json.dumps(run(open_storage(sys.argv[1] if len(sys.argv) > 1 else None, "__main__"))))
