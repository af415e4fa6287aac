"""storage.map on 2 processes: wall time against the ideal, and re-runs.

    python benchmarks/bench_parallel.py [--tasks 16] [--task-s 0.25] [--rerun 10000]
        [--dask-tasks 200] [--dask-task-s 0.02] [--dask-repeat 3] [--only dask] [--write-results]

Prints JSON lines: the wall time of ``--tasks`` calls that each sleep
``--task-s`` seconds on 2 worker processes (ideal: tasks * task_s / 2), the
time of mapping ``--rerun`` stored items again on processes (all hits, one
batched lookup, no worker started; wall and CPU seconds), and joblib.Parallel
on 2 processes inside a ``with storage:`` block (every call stored) against
joblib.Memory on the same job. Targets (DESIGN.md
section 3): within 15% of ideal; re-run under 0.2 s; the block within 15% of
joblib.Memory.

On a Dask LocalCluster (2 worker processes, 1 thread each): ``--dask-tasks``
calls of ``--dask-task-s`` seconds through ``storage.map(executor=client)``
against plain ``client.map`` of the same function, run alternately in the same
minute (median of ``--dask-repeat``), once with a small op and once with an op
whose function uses an 8 MB global. Target: within 10% of plain client.map.
``--write-results`` puts these Dask figures in benchmarks/RESULTS.md, between
its ``<!-- dask-figures:start -->`` and ``<!-- dask-figures:end -->`` markers
(appended if absent); report.py carries that section over when it re-renders.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit, machine, timed, with_marked_section  # noqa: E402

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


BIG = random.Random(0).randbytes(8 << 20)  # 8 MB that the functions below pickle along (they run in __main__)


@op
def nap_big(i, seconds):
    time.sleep(seconds)
    return i + len(BIG) - len(BIG)


def plain_nap_big(i, seconds):
    time.sleep(seconds)
    return i + len(BIG) - len(BIG)


def plain_client_map(client, plain, tasks: int, task_s: float) -> None:
    assert client.gather(client.map(plain, range(tasks), [task_s] * tasks, pure=False)) == list(range(tasks))


def memostore_map(client, memo, storage: Storage, first: int, tasks: int, task_s: float) -> None:
    items = [{"i": i, "seconds": task_s} for i in range(first, first + tasks)]  # new items: every call computed
    refs = storage.map(memo, items, executor=client, progress=False)
    assert refs.computed == tasks


def dask_against_client_map(tmp: Path, tasks: int, task_s: float, repeat: int) -> list[dict]:
    """storage.map on a LocalCluster against plain client.map, alternately, for a small op and one with a big global."""
    import distributed

    figures = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for name, memo, plain in (("small", nap, plain_nap), ("global_8mb", nap_big, plain_nap_big)):
            # One store per op, opened by the workers once, as in a session that maps more than once.
            storage = Storage(db_path=tmp / f"dask_{name}.db")
            plain_client_map(client, plain, tasks, task_s)  # warm up: workers import and load both functions once
            memostore_map(client, memo, storage, -tasks, tasks, task_s)
            plain_s, memo_s = [], []
            for run in range(repeat):  # A/B in turns: the machine is shared, its load drifts
                plain_s.append(timed(lambda: plain_client_map(client, plain, tasks, task_s)))  # noqa: B023
                memo_s.append(timed(lambda: memostore_map(client, memo, storage, run * tasks, tasks, task_s)))  # noqa: B023
            plain_median, memo_median = statistics.median(plain_s), statistics.median(memo_s)
            figures.append(dict(op=name, tasks=tasks, task_s=task_s, workers=2, ideal_s=tasks * task_s / 2,
                                client_map_s=round(plain_median, 3), storage_map_s=round(memo_median, 3),
                                overhead_pct=round((memo_median / plain_median - 1) * 100, 1),
                                client_map_runs=[round(x, 3) for x in plain_s],
                                storage_map_runs=[round(x, 3) for x in memo_s]))
            emit("map_dask_vs_client_map", **figures[-1])
    return figures


def write_dask_results(figures: list[dict], repeat: int, load: float) -> None:
    """Replace the Dask section of RESULTS.md with these figures: the rest of the file is compare.py's."""
    first = figures[0]
    lines = [
        "## storage.map on Dask against plain client.map",
        "",
        f"{first['tasks']} calls of {first['task_s']} s on a Dask LocalCluster of {first['workers']} worker processes "
        f"(1 thread each), median of {repeat} runs taken alternately with plain `client.map` of the same function. "
        "Target: within 10% of plain client.map.",
        "",
        "| op | plain client.map (s) | storage.map (s) | overhead | ideal (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    labels = {"small": "small op", "global_8mb": "op using an 8 MB global"}
    for row in figures:
        lines.append(f"| {labels.get(row['op'], row['op'])} | {row['client_map_s']:.2f} | {row['storage_map_s']:.2f} "
                     f"| {row['overhead_pct']:+.1f}% | {row['ideal_s']:.2f} |")
    facts = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", "benchmarks/bench_parallel.py", *sys.argv[1:]])
    lines += ["", f"Made by `{command}` on {now}, {facts['platform']}, Python {facts['python']}, "
                  f"{facts['cpus']} cpus, load average {load:.2f} at the start (a shared machine: compare the "
                  "overhead, not the seconds)."]
    results = Path(__file__).resolve().parent / "RESULTS.md"
    results.write_text(with_marked_section(results.read_text() if results.exists() else "", "dask-figures",
                                           "\n".join(lines)))


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
    parser.add_argument("--dask-tasks", type=int, default=200)
    parser.add_argument("--dask-task-s", type=float, default=0.02)
    parser.add_argument("--dask-repeat", type=int, default=3)
    parser.add_argument("--only", choices=["dask"], help="run only the Dask figures")
    parser.add_argument("--write-results", action="store_true",
                        help="put the Dask figures in RESULTS.md's dask-figures section")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "dask":
            others(Path(tmp), args)
        figures = dask_against_client_map(Path(tmp), args.dask_tasks, args.dask_task_s, args.dask_repeat)
    if args.write_results:
        write_dask_results(figures, args.dask_repeat, load)


def others(tmp: Path, args: argparse.Namespace) -> None:
    """Every figure but the Dask ones: processes against the ideal, joblib, and re-runs."""
    storage = Storage(db_path=tmp / "parallel.db")
    # Start the reusable worker pool first, as a session that maps more than once would.
    storage.map(nap, [{"i": -1, "seconds": 0.0}], executor="processes", n_jobs=2, progress=False)
    items = [{"i": i, "seconds": args.task_s} for i in range(args.tasks)]
    wall = timed(lambda: storage.map(nap, items, executor="processes", n_jobs=2, progress=False))
    ideal = args.tasks * args.task_s / 2
    emit("map_processes_wall", tasks=args.tasks, task_s=args.task_s, workers=2, seconds=round(wall, 3),
         ideal_s=ideal, overhead_pct=round((wall / ideal - 1) * 100, 1))

    joblib_block_vs_memory(tmp, args.tasks, args.task_s)

    rerun_items = [{"x": x} for x in range(args.rerun)]
    storage.map(inc, rerun_items, progress=False)
    fresh = Storage(db_path=tmp / "parallel.db")  # an empty cache, as in a new process
    cpu = time.process_time()  # all of it in this process: a map of stored items starts no worker
    seconds = timed(lambda: fresh.map(inc, rerun_items, executor="processes", n_jobs=2, progress=False))
    cpu_s = time.process_time() - cpu
    emit("map_rerun_stored", items=args.rerun, seconds=round(seconds, 3), cpu_s=round(cpu_s, 3),
         us_per_item=round(seconds / args.rerun * 1e6, 1))


if __name__ == "__main__":
    main()
