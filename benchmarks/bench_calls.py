"""Per-call time of the @op call path: cold (new calls) and hit (stored calls).

    python benchmarks/bench_calls.py [--n 10000] [--claims-only] [--cpu]

Prints JSON lines: cold path on a db_path (amortized over N new calls, commit
included), hit path in the process that stored the calls, and hit path in a
fresh process that reopens the db_path. Targets (DESIGN.md section 3): hit
20 µs in process and 50 µs after reopening, cold 50 µs on a db_path.

Claims (a block on a shared store claims the calls of slow ops, and each op's
first call, so that two processes do not compute one call) are measured with
and without, runs interleaved: the cold path of a fast op, and calls of an
op that takes 0.1 s (every one claimed). Target: claims cost at most 10%.

``--cpu`` reports CPU time instead of wall time (for A/B runs on a busy machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import cpu_clock, emit, median_of, timed, use_cpu_clock  # noqa: E402

from memostore import Storage, op  # noqa: E402


@op
def inc(x):
    return x + 1


SLOW_S = 0.1  # CLAIM_WORTH_S: every call of an op this slow is claimed


@op
def slow(x):
    time.sleep(SLOW_S)
    return x


def without_claims(storage: Storage) -> Storage:
    """The storage with its block claims switched off (as for a store no other process reaches)."""
    storage.call_path._block_claims = None  # a benchmark's private switch: there is no public one
    return storage


def claims_cost(tmp: Path, n: int, op_: Any, rounds: int, sleeps_s: float = 0.0) -> dict[str, float]:
    """Seconds per new call with and without claims, runs interleaved (medians), and the cost of claims
    as a fraction of a call without them (with ``--cpu``, ``sleeps_s`` of sleep per call, which takes no
    CPU time, are counted in the call)."""
    figures: dict[str, list[float]] = {"with": [], "without": []}
    for round_ in range(rounds):
        for mode in ("with", "without"):
            storage = Storage(db_path=tmp / f"claims-{mode}-{round_}.db")
            if mode == "without":
                without_claims(storage)

            def run(storage: Storage = storage) -> None:
                with storage:
                    for i in range(n):
                        op_(i)

            figures[mode].append(timed(run) / n)
    with_s, without_s = (sorted(v)[len(v) // 2] for v in figures.values())
    call_s = without_s + (sleeps_s if cpu_clock() else 0.0)
    return {"with_us_per_call": round(with_s * 1e6, 2), "without_us_per_call": round(without_s * 1e6, 2),
            "cost": round((with_s - without_s) / call_s, 4)}


def emit_claims(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        emit("claims_cold_path_db_path", n=n, **claims_cost(Path(tmp), n, inc, 3))
        emit("claims_slow_op_db_path", n=10, op_seconds=SLOW_S, **claims_cost(Path(tmp), 10, slow, 3, SLOW_S))


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
    parser.add_argument("--claims-only", action="store_true", help="only the claims figures")
    parser.add_argument("--cpu", action="store_true", help="CPU time instead of wall time")
    parser.add_argument("--reopen", help=argparse.SUPPRESS)  # internal: child process mode
    args = parser.parse_args()
    if args.cpu:
        use_cpu_clock()
    if args.reopen:
        print(reopened_hit(args.reopen, args.n))
        return
    n = args.n
    if args.claims_only:
        emit_claims(n)
        return

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
            out = subprocess.run([sys.executable, __file__, "--n", str(n), "--reopen", db_path,
                                  *(["--cpu"] if args.cpu else [])],
                                 capture_output=True, text=True, check=True).stdout
            return float(out.strip())

        emit("hit_path_fresh_process", n=n, us_per_call=round(median_of(3, fresh_process) * 1e6, 2))

        tracked = Storage(db_path=db_path, deps_path="__main__")  # versions also cover helpers here
        run_calls(tracked, n)
        hit = median_of(3, lambda: timed(lambda: run_calls(tracked, n)) / n)
        emit("hit_path_same_process_deps_path", n=n, us_per_call=round(hit * 1e6, 2))
    emit_claims(n)


if __name__ == "__main__":
    main()
