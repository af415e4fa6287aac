"""Time and peak memory of ``storage.cf(op).expand_all().df()`` against store size.

    python benchmarks/bench_cf.py [--sizes 10000 100000 1000000] [--outputs 1000 10000]

Each size is a SQLite store of that many calls of a 3-op chain
(load -> fit -> score), built through the ordinary @op call path. The query
runs in a fresh process, which reports its wall time and peak resident memory.
Target (DESIGN.md section 3): 1,000,000 calls under 10 s and 4 GB, linear growth.

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
    with Storage(db_path=db_path):
        for i in range(calls // 3):
            score(fit(load(i)))
    return time.perf_counter() - start


def query(db_path: str) -> dict[str, float]:
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
            db_path = str(Path(tmp) / f"chain_{size}.db")
            build_seconds = build(db_path, size)
            out = subprocess.run([sys.executable, __file__, "--query", db_path],
                                 capture_output=True, text=True, check=True).stdout
            measured = json.loads(out)
            emit("cf_expand_all_df", calls=size, rows=measured["rows"],
                 seconds=round(measured["seconds"], 3),
                 peak_mb=round(measured["peak_bytes"] / 2**20, 1),
                 us_per_call=round(measured["seconds"] / size * 1e6, 2),
                 build_seconds=round(build_seconds, 1))


if __name__ == "__main__":
    main()
