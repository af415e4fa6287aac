"""Time and peak memory of ``storage.cf(op).expand_all().df()`` against store size.

    python benchmarks/bench_cf.py [--sizes 10000 100000 1000000] [--no-cold] [--outputs 1000 10000]

Each size is a SQLite store of that many calls of a 3-op chain
(load -> fit -> score), built through the ordinary @op call path and
committed every 10,000 calls; its bytes on disk per stored call are reported.
The query runs in a fresh process (after importing pandas), which reports its
wall time and peak resident memory: first with a warm page cache, then right
after the store left it (``/proc/sys/vm/drop_caches`` where permitted, else
``posix_fadvise(DONTNEED)`` on the store's files; ``--no-cold`` skips it).
Targets: 1,000,000 calls under 4 s warm, 8 s cold and 2 GB; linear growth.

``--outputs`` measures instead ``storage.cf(op)``, ``df()`` and ``expand_all()``
over one call with that many named outputs (target: 10,000 outputs, ``cf`` under 1 s).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit  # noqa: E402
from bench_store import COMMIT_EVERY_CALLS, disk_bytes, evict_page_cache  # noqa: E402

from memostore import Storage, op  # noqa: E402


@op
def load(i):
    return i


@op
def fit(data):
    return data * 2


@op
def score(model):
    return model + 1


def build(db_path: str, calls: int) -> float:
    """Store ``calls`` calls (calls / 3 chains); returns seconds taken."""
    start = time.perf_counter()
    storage = Storage(db_path=db_path)
    chains, per_commit = calls // 3, COMMIT_EVERY_CALLS // 3
    for first in range(0, chains, per_commit):
        with storage:
            for i in range(first, min(first + per_commit, chains)):
                score(fit(load(i)))
    storage.close()
    return time.perf_counter() - start


def query(db_path: str) -> dict[str, float]:
    import pandas  # noqa: F401 - imported before timing: a one-time cost of the process, not of the frame

    storage = Storage(db_path=db_path)
    start = time.perf_counter()
    table = storage.cf(load).expand_all().df()
    seconds = time.perf_counter() - start
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "rows": len(table), "peak_bytes": peak_bytes}


def wide_op(outputs: int) -> Any:
    """An op returning ``outputs`` named outputs (made per size: output names are fixed at decoration)."""
    names = [f"out_{i}" for i in range(outputs)]

    def wide(x: int) -> tuple[int, ...]:
        return tuple(range(x, x + len(names)))

    return op(output_names=names, name=f"wide_{outputs}")(wide)


def query_wide(db_path: str, outputs: int) -> dict[str, float]:
    import pandas  # noqa: F401 - imported before timing: the first frame of a process imports it

    storage = Storage(db_path=db_path)
    wide = wide_op(outputs)
    start = time.perf_counter()
    frame = storage.cf(wide)
    cf_seconds = time.perf_counter() - start
    table = frame.df()
    df_seconds = time.perf_counter() - start - cf_seconds
    frame.expand_all()
    return {"cf_seconds": cf_seconds, "df_seconds": df_seconds,
            "expand_all_seconds": time.perf_counter() - start - cf_seconds - df_seconds, "columns": table.shape[1]}


def bench_wide(tmp: str, outputs: int) -> None:
    db_path = str(Path(tmp) / f"wide_{outputs}.db")
    with Storage(db_path=db_path):
        wide_op(outputs)(1)
    out = subprocess.run([sys.executable, __file__, "--query-wide", db_path, str(outputs)],
                         capture_output=True, text=True, check=True).stdout
    measured = json.loads(out)
    emit("cf_one_call_many_outputs", outputs=outputs, columns=measured["columns"],
         cf_seconds=round(measured["cf_seconds"], 3), df_seconds=round(measured["df_seconds"], 3),
         expand_all_seconds=round(measured["expand_all_seconds"], 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--outputs", type=int, nargs="+", help="one call with this many outputs, instead")
    parser.add_argument("--no-cold", action="store_true", help="skip the query after dropping the page cache")
    parser.add_argument("--query", help=argparse.SUPPRESS)  # internal: child process mode
    parser.add_argument("--query-wide", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.query:
        print(json.dumps(query(args.query)))
        return
    if args.query_wide:
        print(json.dumps(query_wide(args.query_wide[0], int(args.query_wide[1]))))
        return
    if args.outputs:
        with tempfile.TemporaryDirectory() as tmp:
            for outputs in args.outputs:
                bench_wide(tmp, outputs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            bench_size(Path(tmp) / f"chain_{size}", size, cold=not args.no_cold)


def fresh_query(db_path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--query", str(db_path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def bench_size(where: Path, size: int, cold: bool) -> None:
    """A store of ``size`` calls in its own directory: the frame warm (and cold), bytes per call."""
    where.mkdir()
    db_path = where / "store.db"
    build_seconds = build(str(db_path), size)
    measured = fresh_query(db_path)
    figures = {"seconds": round(measured["seconds"], 3), "peak_mb": round(measured["peak_bytes"] / 2**20, 1)}
    if cold:
        how = evict_page_cache(where)
        cold_run = fresh_query(db_path)
        figures.update(cold_seconds=round(cold_run["seconds"], 3), cold_how=how,
                       cold_peak_mb=round(cold_run["peak_bytes"] / 2**20, 1))
    emit("cf_expand_all_df", calls=size, rows=measured["rows"], **figures,
         us_per_call=round(measured["seconds"] / size * 1e6, 2), bytes_per_call=round(disk_bytes(where) / size),
         build_seconds=round(build_seconds, 1))


if __name__ == "__main__":
    main()
