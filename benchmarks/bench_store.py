"""How a SQLite store behaves as it grows: new-call cost, bytes per call, the frame, drop_calls.

    python benchmarks/bench_store.py [--sizes 10000 100000 1000000] [--skip-frame] [--drop-only] [--cpu]

One store of the W4 2-op chain (inc -> double), grown through the ordinary
@op call path and committed every 10,000 calls. At each size it prints:
the cost of 10,000 more new calls (µs per call, commit included) and the
bytes on disk per stored call (database, write-ahead log and blobs). At the
largest size, ``storage.cf(inc).expand_all().df()`` runs in a fresh process
with a warm page cache, then with a cold one (``/proc/sys/vm/drop_caches``
where permitted, else a fresh copy of the file), reporting wall time and peak
memory. Last, drop_calls of half of a 10,000-call store, with dependents,
finding them included. Targets (schema v2): new call <= 50 µs at 10k and <=
1.3x that at 1M and 10M; <= 400 bytes per call; frame at 1M < 4 s warm, < 8 s
cold, < 2 GB; drop < 0.1 s.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import cpu_clock, emit, timed, use_cpu_clock  # noqa: E402

from memostore import Storage, op  # noqa: E402

COMMIT_EVERY_CALLS = 10_000


@op
def inc(x):
    return x + 1


@op
def double(x):
    return 2 * x


def grow(storage: Storage, start: int, calls: int) -> None:
    """``calls`` more calls (calls / 2 chains), committed every COMMIT_EVERY_CALLS."""
    chains = range(start // 2, (start + calls) // 2)
    for first in range(chains.start, chains.stop, COMMIT_EVERY_CALLS // 2):
        with storage:
            for i in range(first, min(first + COMMIT_EVERY_CALLS // 2, chains.stop)):
                double(inc(i))


def disk_bytes(db_path: Path) -> int:
    """Bytes of the store on disk, after folding the write-ahead log into the file."""
    with sqlite3.connect(db_path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in db_path.parent.rglob("*") if p.is_file() and p.name.startswith(db_path.name))


def query(db_path: str) -> None:
    """The frame, in this (fresh) process: prints seconds, rows and peak MB."""
    rows: list[int] = []
    seconds = timed(lambda: rows.append(len(Storage(db_path=db_path).cf(inc).expand_all().df())))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows[0], "peak_mb": peak_mb}))


def fresh_query(db_path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--query", str(db_path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cold_query(db_path: Path) -> dict[str, object]:
    """The frame after dropping the page cache, or on a fresh copy of the file where that is not permitted."""
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return {**fresh_query(db_path), "how": "drop_caches"}
    except OSError:
        copy = db_path.with_name("cold-copy.db")
        shutil.copyfile(db_path, copy)
        return {**fresh_query(copy), "how": "fresh copy of the file (drop_caches not permitted)"}


def drop_half(tmp: Path) -> dict[str, float]:
    """Seconds to find 2,500 of the 5,000 first calls of a 10,000-call store by a frame and drop them
    with their 2,500 dependents; the frame's one-time imports (pandas) happen before the clock starts."""
    storage = Storage(db_path=tmp / "drop.db")
    grow(storage, 0, 10_000)
    Storage().cf(inc).df()  # imports
    clock = time.process_time if cpu_clock() else time.perf_counter
    started = clock()
    chosen = storage.cf(inc).df(values="refs")["inc"].tolist()[:2_500]  # finding them is part of the job
    found = clock()
    dropped = storage.drop_calls(chosen, delete_dependents=True)
    assert len(dropped) == 5_000
    done = clock()
    return {"seconds": round(done - started, 4), "finding_s": round(found - started, 4),
            "dropping_s": round(done - found, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--skip-frame", action="store_true")
    parser.add_argument("--drop-only", action="store_true", help="only the drop_calls figure")
    parser.add_argument("--cpu", action="store_true", help="CPU time of this process instead of wall time")
    parser.add_argument("--query", help=argparse.SUPPRESS)  # internal: child process mode
    args = parser.parse_args()
    if args.cpu:
        use_cpu_clock()
    if args.query:
        query(args.query)
        return
    if args.drop_only:
        with tempfile.TemporaryDirectory() as tmp:
            emit("drop_half_of_10000", **drop_half(Path(tmp)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "store.db"
        storage = Storage(db_path=db_path)
        stored = 0
        for size in sorted(args.sizes):
            build_s = timed(functools.partial(grow, storage, stored, size - stored))
            new_call_s = timed(functools.partial(grow, storage, size, COMMIT_EVERY_CALLS)) / COMMIT_EVERY_CALLS
            stored = size + COMMIT_EVERY_CALLS
            emit("store_growth", stored_calls=size, build_s=round(build_s, 1),
                 new_call_us=round(new_call_s * 1e6, 1),
                 bytes_per_call=round(disk_bytes(db_path) / stored))
        if not args.skip_frame:
            storage.close()
            fresh_query(db_path)  # warms the page cache
            emit("frame_warm", stored_calls=stored, **fresh_query(db_path))
            emit("frame_cold", stored_calls=stored, **cold_query(db_path))
        emit("drop_half_of_10000", **drop_half(Path(tmp)))


if __name__ == "__main__":
    main()
