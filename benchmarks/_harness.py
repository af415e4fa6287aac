"""Shared helpers for the benchmarks: timing, machine facts, JSON lines."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any, Callable


def machine() -> dict[str, Any]:
    """The facts a figure needs to be compared with another."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "clock": "cpu" if cpu_clock() else "wall",
    }


_clock: Callable[[], float] = time.perf_counter


def use_cpu_clock() -> None:
    """Measure this process's CPU seconds instead of wall seconds: steadier for A/B comparisons on a
    machine shared with other work (a figure to compare with another, not a wall time to publish)."""
    global _clock
    _clock = time.process_time


def cpu_clock() -> bool:
    """Whether ``timed`` measures CPU time (see ``use_cpu_clock``)."""
    return _clock is time.process_time


def timed(run: Callable[[], Any]) -> float:
    """Wall seconds of one run (CPU seconds after ``use_cpu_clock``)."""
    start = _clock()
    run()
    return _clock() - start


def emit(benchmark: str, **fields: Any) -> None:
    """Print one measurement as a JSON line."""
    print(json.dumps({"benchmark": benchmark, **fields, **machine()}), flush=True)


def marked_section(text: str, name: str) -> str:
    """The block between ``<!-- name:start -->`` and ``<!-- name:end -->`` (markers included), or ""."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    first = text.find(start)
    last = text.find(end, first)
    return text[first:last + len(end)] if first >= 0 and last >= 0 else ""


def with_marked_section(text: str, name: str, body: str) -> str:
    """``text`` with its ``name`` block's body replaced by ``body`` (the block appended at the end if absent)."""
    block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    old = marked_section(text, name)
    if old:
        return text.replace(old, block, 1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of ``runs`` measurements."""
    values = sorted(measure() for _ in range(runs))
    return values[len(values) // 2]


if __name__ == "__main__":
    sys.exit("run one of the bench_*.py scripts")
