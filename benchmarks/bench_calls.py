"""Per-call time of the @op call path: cold (new calls) and hit (stored calls).

    python benchmarks/bench_calls.py [--n 10000]

Prints JSON lines: cold path on a db_path (amortized over N new calls, commit
included), hit path in the process that stored the calls, and hit path in a
fresh process that reopens the db_path. Targets (DESIGN.md section 3): hit
20 µs in process and 50 µs after reopening, cold 100 µs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit, median_of, timed  # noqa: E402

from memostore import Storage, op  # noqa: E402


@op
def inc(x):
    return x + 1


def run_calls(storage: Storage, n: int) -> None:
    with storage:
        for i in range(n):
            inc(i)


def reopened_hit(db_path: str, n: int) -> float:
    """Hit-path seconds per call in this (fresh) process."""
    storage = Storage(db_path=db_path)
    return timed(lambda: run_calls(storage, n)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--reopen", help=argparse.SUPPRESS)  # internal: child process mode
    args = parser.parse_args()
    if args.reopen:
        print(reopened_hit(args.reopen, args.n))
        return
    n = args.n

    def cold() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            return timed(lambda: run_calls(Storage(db_path=Path(tmp) / "cold.db"), n)) / n

    emit("cold_path_db_path", n=n, us_per_call=round(median_of(3, cold) * 1e6, 2))

    def cold_memory() -> float:
        return timed(lambda: run_calls(Storage(), n)) / n

    emit("cold_path_in_memory", n=n, us_per_call=round(median_of(3, cold_memory) * 1e6, 2))

    with tempfile.TemporaryDirectory() as tmp:
        db_path = str(Path(tmp) / "hits.db")
        storage = Storage(db_path=db_path)
        run_calls(storage, n)
        hit = median_of(3, lambda: timed(lambda: run_calls(storage, n)) / n)
        emit("hit_path_same_process", n=n, us_per_call=round(hit * 1e6, 2))

        def fresh_process() -> float:
            out = subprocess.run([sys.executable, __file__, "--n", str(n), "--reopen", db_path],
                                 capture_output=True, text=True, check=True).stdout
            return float(out.strip())

        emit("hit_path_fresh_process", n=n, us_per_call=round(median_of(3, fresh_process) * 1e6, 2))

        tracked = Storage(db_path=db_path, deps_path="__main__")  # versions also cover helpers here
        run_calls(tracked, n)
        hit = median_of(3, lambda: timed(lambda: run_calls(tracked, n)) / n)
        emit("hit_path_same_process_deps_path", n=n, us_per_call=round(hit * 1e6, 2))


if __name__ == "__main__":
    main()
