"""How a SQLite store behaves as it grows: new-call cost, bytes per call, the frame, drop_calls.

    python benchmarks/bench_store.py [--sizes 10000 100000 1000000] [--skip-frame] [--drop-only] [--cpu]

One store of a 2-op chain (inc -> double), grown through the ordinary @op
call path and committed every 10,000 calls. At each size it prints: the cost
of 10,000 more new calls (µs per call, commit included) and the bytes on disk
per stored call (database, write-ahead log and blobs, as du counts them). At the largest size,
``storage.cf(inc).expand_all().df()`` runs in a fresh process with a warm page
cache, then with a cold one (``/proc/sys/vm/drop_caches`` where permitted,
else the store's files evicted from the page cache with
``posix_fadvise(DONTNEED)``), reporting wall time and peak memory. Last,
drop_calls of half of a 10,000-call store, with dependents, finding them
included. Targets: new call <= 50 µs at 10k and <= 1.3x that at 1M and 10M;
<= 400 bytes per call; frame at 1M < 4 s warm, < 8 s cold, < 2 GB; drop < 0.1 s.

The engine-neutral helpers here (``grow``, ``disk_bytes``, ``evict_page_cache``,
``read_through``) also serve benchmarks/compare.py's store-growth workload for
every engine, so this module imports memostore only inside its functions.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ContextManager

sys.path.insert(0, str(Path(__file__).parent))
from _harness import cpu_clock, emit, timed, use_cpu_clock  # noqa: E402

COMMIT_EVERY_CALLS = 10_000


def inc(x):
    return x + 1


def double(x):
    return 2 * x


@functools.cache
def chain_ops() -> tuple[Any, Any]:
    """The chain's two functions as memostore ops (decorated once per process)."""
    from memostore import op
    return op(inc), op(double)


def grow(block: ContextManager[Any], first: Callable[[Any], Any], second: Callable[[Any], Any],
         start: int, calls: int) -> None:
    """``calls`` more calls (calls / 2 chains ``second(first(i))``), inside ``block`` entered anew every
    COMMIT_EVERY_CALLS calls: each engine's block commits on exit (joblib's null block writes every call)."""
    chains = range(start // 2, (start + calls) // 2)
    for begin in range(chains.start, chains.stop, COMMIT_EVERY_CALLS // 2):
        with block:
            for i in range(begin, min(begin + COMMIT_EVERY_CALLS // 2, chains.stop)):
                second(first(i))


def store_files(where: Path) -> list[Path]:
    return [p for p in where.rglob("*") if p.is_file()]


def disk_bytes(where: Path) -> int:
    """Bytes the store(s) under ``where`` (a directory of its own) take on disk, as ``du`` counts them:
    the blocks of every file and directory (a store of many small files pays a block for each), after
    folding each SQLite write-ahead log into its database file."""
    for db_file in where.rglob("*.db"):
        with contextlib.closing(sqlite3.connect(db_file)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.lstat().st_blocks * 512 for p in where.rglob("*"))


def evict_page_cache(where: Path) -> str:
    """Empties the OS page cache (``drop_caches``, where permitted), else evicts the files under ``where``
    from it one by one; returns how, for the report."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return "drop_caches"
    except OSError:
        for path in store_files(where):
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)
        return "the store's files evicted with posix_fadvise(DONTNEED) (drop_caches not permitted)"


def read_through(where: Path) -> None:
    """Reads every file under ``where``: the page cache warm again, as while the store was growing."""
    for path in store_files(where):
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def query(db_path: str) -> None:
    """The frame, in this (fresh) process: prints seconds, rows and peak MB. Its one-time import of pandas
    happens before the clock starts."""
    import pandas  # noqa: F401

    from memostore import Storage

    rows: list[int] = []
    seconds = timed(lambda: rows.append(len(Storage(db_path=db_path).cf(chain_ops()[0]).expand_all().df())))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows[0], "peak_mb": peak_mb}))


def fresh_query(db_path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--query", str(db_path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cold_query(db_path: Path) -> dict[str, object]:
    """The frame right after the store's pages left the OS page cache."""
    how = evict_page_cache(db_path.parent)
    return {**fresh_query(db_path), "how": how}


def drop_half(tmp: Path) -> dict[str, float]:
    """Seconds to find 2,500 of the 5,000 first calls of a 10,000-call store by a frame and drop them
    with their 2,500 dependents; the frame's one-time imports (pandas) happen before the clock starts."""
    from memostore import Storage

    first, second = chain_ops()
    storage = Storage(db_path=tmp / "drop.db")
    grow(storage, first, second, 0, 10_000)
    Storage().cf(first).df()  # imports
    clock = time.process_time if cpu_clock() else time.perf_counter
    started = clock()
    chosen = storage.cf(first).df(values="refs")["inc"].tolist()[:2_500]  # finding them is part of the job
    found = clock()
    dropped = storage.drop_calls(chosen, delete_dependents=True)
    assert len(dropped) == 5_000
    done = clock()
    return {"seconds": round(done - started, 4), "finding_s": round(found - started, 4),
            "dropping_s": round(done - found, 4)}


def growth(tmp: Path, sizes: list[int], frame: bool) -> None:
    """One store grown through ``sizes``: new-call cost and bytes per call at each, then the frame."""
    from memostore import Storage

    first, second = chain_ops()
    db_path = tmp / "store" / "store.db"
    db_path.parent.mkdir()
    storage = Storage(db_path=db_path)
    stored = 0
    for size in sorted(sizes):
        size = max(size, stored)  # a size under the last one's end measures at that end
        build_s = timed(functools.partial(grow, storage, first, second, stored, size - stored))
        new_call_s = timed(functools.partial(grow, storage, first, second, size, COMMIT_EVERY_CALLS))
        stored = size + COMMIT_EVERY_CALLS
        emit("store_growth", stored_calls=size, build_s=round(build_s, 1),
             new_call_us=round(new_call_s / COMMIT_EVERY_CALLS * 1e6, 1),
             bytes_per_call=round(disk_bytes(db_path.parent) / stored))
    if frame:
        storage.close()
        fresh_query(db_path)  # warms the page cache
        emit("frame_warm", stored_calls=stored, **fresh_query(db_path))
        emit("frame_cold", stored_calls=stored, **cold_query(db_path))


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
    with tempfile.TemporaryDirectory() as tmp:
        if not args.drop_only:
            growth(Path(tmp), args.sizes, frame=not args.skip_frame)
        emit("drop_half_of_10000", **drop_half(Path(tmp)))


if __name__ == "__main__":
    main()
