"""A first, cold joblib job inside a ``with storage:`` block against the same job over joblib.Memory.

    python benchmarks/bench_joblib_block.py [--runs 3] [--calls 16] [--seconds 0.25]

Each run is a fresh Python process, so both sides pay for starting joblib's
worker processes: the figure a user sees the first time they run
``with storage: Parallel(n_jobs=2)(delayed(op)(x) for x in xs)``. The two
sides alternate, and the medians are printed as JSON lines with the overhead.
Target: memostore within 15% of joblib.Memory, with every call stored.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from statistics import median

from _harness import emit

NAP_MODULE = textwrap.dedent('''
    import time
    from memostore import op

    @op
    def nap(i, seconds):
        time.sleep(seconds)
        return i


    def plain_nap(i, seconds):
        time.sleep(seconds)
        return i
''')

JOB = textwrap.dedent('''
    import sys, time
    from pathlib import Path

    side, folder, calls, seconds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    sys.path.insert(0, str(folder))  # the workers import naps from there too
    import joblib
    import naps
    if side == "memostore":
        from memostore import Storage
        storage = Storage(db_path=folder / "store.db")
        start = time.perf_counter()
        with storage:
            refs = joblib.Parallel(n_jobs=2)(joblib.delayed(naps.nap)(i, seconds) for i in range(calls))
        took = time.perf_counter() - start
        assert storage.unwrap(refs) == list(range(calls))
        assert len(storage.calls_of(naps.nap)) == calls  # every call stored
    else:
        cached = joblib.Memory(folder / "joblib", verbose=0).cache(naps.plain_nap)
        start = time.perf_counter()
        joblib.Parallel(n_jobs=2)(joblib.delayed(cached)(i, seconds) for i in range(calls))
        took = time.perf_counter() - start
    print(took)
''')


def one_run(side: str, calls: int, seconds: float) -> float:
    """Seconds of the job in a fresh process with a fresh store or cache."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "naps.py").write_text(NAP_MODULE)
        result = subprocess.run([sys.executable, "-c", JOB, side, folder, str(calls), str(seconds)],
                                cwd=folder, capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=0.25)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"memostore": [], "joblib_memory": []}
    for _ in range(args.runs):
        times["memostore"].append(one_run("memostore", args.calls, args.seconds))
        times["joblib_memory"].append(one_run("joblib_memory", args.calls, args.seconds))
    ours, theirs = median(times["memostore"]), median(times["joblib_memory"])
    emit("joblib_cold_job_in_a_block", calls=args.calls, call_s=args.seconds, workers=2,
         memostore_s=round(ours, 3), joblib_memory_s=round(theirs, 3),
         overhead_pct=round(100 * (ours / theirs - 1), 1), memostore_runs=times["memostore"],
         joblib_memory_runs=times["joblib_memory"])


if __name__ == "__main__":
    main()
