"""storage.map on 2 processes: wall time against the ideal, and re-runs.

    python benchmarks/bench_parallel.py [--tasks 16] [--task-s 0.25] [--rerun 10000]

Prints JSON lines: the wall time of ``--tasks`` calls that each sleep
``--task-s`` seconds on 2 worker processes (ideal: tasks * task_s / 2), and
the time of mapping ``--rerun`` stored items again (all hits, one batched
lookup), and joblib.Parallel on 2 processes inside a ``with storage:`` block
(every call stored) against joblib.Memory on the same job. Targets (DESIGN.md
section 3): within 15% of ideal; re-run under 1 s; the block within 15% of
joblib.Memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit, timed  # noqa: E402

from memostore import Storage, op  # noqa: E402


@op
def nap(i, seconds):
    time.sleep(seconds)
    return i


@op
def inc(x):
    return x + 1


def plain_nap(i, seconds):
    time.sleep(seconds)
    return i


def joblib_block_vs_memory(tmp: Path, tasks: int, task_s: float) -> None:
    """joblib.Parallel on 2 processes inside a block (every call stored) against joblib.Memory on the same job."""
    import joblib

    parallel = joblib.Parallel(n_jobs=2)
    parallel(joblib.delayed(plain_nap)(-1, 0.0) for _ in range(2))  # start the workers for both, as above
    storage = Storage(db_path=tmp / "joblib_block.db")
    with storage:  # the workers open the store once, as in a session that runs more than one job
        parallel(joblib.delayed(nap)(-1 - k, 0.05) for k in range(4))

    def in_block() -> None:
        with storage:
            refs = parallel(joblib.delayed(nap)(i, task_s) for i in range(tasks))
        assert storage.unwrap(refs) == list(range(tasks))

    block = timed(in_block)
    stored = sum(1 for i in Storage(db_path=tmp / "joblib_block.db").cf(nap).df()["i"] if i >= 0)
    cached = joblib.Memory(tmp / "joblib_memory", verbose=0).cache(plain_nap)
    memory = timed(lambda: parallel(joblib.delayed(cached)(i, task_s) for i in range(tasks)))
    emit("joblib_in_block_vs_memory", tasks=tasks, task_s=task_s, workers=2, stored_calls=stored,
         block_s=round(block, 3), joblib_memory_s=round(memory, 3), overhead_pct=round((block / memory - 1) * 100, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--task-s", type=float, default=0.25)
    parser.add_argument("--rerun", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = Storage(db_path=Path(tmp) / "parallel.db")
        # Start the reusable worker pool first, as a session that maps more than once would.
        storage.map(nap, [{"i": -1, "seconds": 0.0}], executor="processes", n_jobs=2, progress=False)
        items = [{"i": i, "seconds": args.task_s} for i in range(args.tasks)]
        wall = timed(lambda: storage.map(nap, items, executor="processes", n_jobs=2, progress=False))
        ideal = args.tasks * args.task_s / 2
        emit("map_processes_wall", tasks=args.tasks, task_s=args.task_s, workers=2, seconds=round(wall, 3),
             ideal_s=ideal, overhead_pct=round((wall / ideal - 1) * 100, 1))

        joblib_block_vs_memory(Path(tmp), args.tasks, args.task_s)

        rerun_items = [{"x": x} for x in range(args.rerun)]
        storage.map(inc, rerun_items, progress=False)
        fresh = Storage(db_path=Path(tmp) / "parallel.db")  # an empty cache, as in a new process
        seconds = timed(lambda: fresh.map(inc, rerun_items, progress=False))
        emit("map_rerun_stored", items=args.rerun, seconds=round(seconds, 3),
             us_per_item=round(seconds / args.rerun * 1e6, 1))


if __name__ == "__main__":
    main()
