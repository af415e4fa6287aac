"""What ``storage.preload`` saves: hits served from the call cache instead of one query each.

    python benchmarks/bench_preload.py [--n 5000]

Stores N calls in a db_path, then re-runs them from a fresh Storage (an empty
call cache, as after reopening a notebook): as is (``cold``), after
``storage.preload(op)`` with its time included (``preload``), and the hits
alone after a preload (``hits_only``). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit, median_of, timed  # noqa: E402

from memostore import Storage, op  # noqa: E402


@op
def inc(x):
    return x + 1


def rerun(storage: Storage, n: int) -> None:
    with storage:
        for i in range(n):
            inc(i)


def measure(db_path: Path, n: int, mode: str) -> float:
    """Seconds per re-run call from a fresh Storage: ``cold``, ``preload`` (its time included)
    or ``hits_only`` (after a preload, not timed)."""
    storage = Storage(db_path)
    if mode == "hits_only":
        storage.preload(inc)
    if mode == "preload":
        return timed(lambda: (storage.preload(inc), rerun(storage, n))) / n
    return timed(lambda: rerun(storage, n)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5_000)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "runs.db"
        rerun(Storage(db_path), n)
        for mode in ("cold", "preload", "hits_only") * 2:  # alternated: the machine's load changes
            seconds = median_of(3, lambda mode=mode: measure(db_path, n, mode))
            emit("rerun_stored_calls", n=n, mode=mode, us_per_call=round(seconds * 1e6, 2))


if __name__ == "__main__":
    main()
