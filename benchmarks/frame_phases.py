"""Time ``storage.cf(op).expand_all().df()`` on an existing store, phase by phase, A/B.

Each run is a fresh process (``import pandas`` before the clock starts, as
``peers.py`` does) that prints one JSON line: wall and CPU seconds in all,
CPU seconds of each phase (``cf``, ``expand_all``, ``df``) and peak memory.
Given several ``--code`` directories (checkouts of memostore), the runs
alternate between them, so that on a shared machine each sees the same load;
compare CPU seconds there. ``--cold`` first evicts the store's file from the
page cache (``posix_fadvise``: only that file, no root needed).

    python benchmarks/frame_phases.py store.db --op inc --code /tmp/base . --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time
import pandas  # noqa: F401
import memostore
from memostore import Storage
storage = Storage(db_path=sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
frame = storage.cf(sys.argv[2]); after_cf = time.process_time()
frame = frame.expand_all(); after_expand = time.process_time()
rows = len(frame.df()); end = time.process_time()
print(json.dumps({"memostore": memostore.__file__, "rows": rows,
                  "wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(end - cpu, 3),
                  "cf_cpu_s": round(after_cf - cpu, 3), "expand_all_cpu_s": round(after_expand - after_cf, 3),
                  "df_cpu_s": round(end - after_expand, 3),
                  "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def evict(db: Path) -> None:
    """Drop the store's pages (and its log's) from the page cache."""
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def run(db: Path, op: str, code: str, cold: bool) -> dict[str, object]:
    if cold:
        evict(db)
    env = {**os.environ, "PYTHONPATH": str(Path(code).resolve())}  # and -P: not the working directory
    found = subprocess.run([sys.executable, "-P", "-c", CHILD, str(db), op], env=env, check=True,
                           capture_output=True, text=True)
    return {"code": code, "cold": cold, **json.loads(found.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--op", default="inc", help="the op (by name) the frame starts from")
    parser.add_argument("--code", nargs="+", default=["."], help="memostore checkouts to alternate between")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="evict the store from the page cache before each run")
    args = parser.parse_args()
    for _ in range(args.runs):
        for code in args.code:
            print(json.dumps(run(args.db, args.op, code, args.cold)), flush=True)


if __name__ == "__main__":
    main()
