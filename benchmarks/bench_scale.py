"""The new-call cost of a large SQLite store, on a kept copy: where the growth from 10k to 10M calls goes.

    python benchmarks/bench_scale.py build STORE_DIR --calls N [--from KEPT_DIR]
    python benchmarks/bench_scale.py rounds KEPT_DIR [--rounds 5] [--pragma mmap_size=...]

``build`` grows a store of the W4 chain (``second(first(i))``, bench_store's
ops and loop) through the ordinary @op call path, committed every 10,000
calls as bench_store does, from an empty store or a copy of a kept one: the
same rows, in the same order, into the same tables and indexes. Only the
build's own connection differs, in ways that change nothing stored: an
8 GiB page cache, no rollback journal and no fsync (a crash during the build
loses the copy). The store is switched back to write-ahead logging at the end.
Building 10M calls takes about 20 minutes of CPU on a quiet machine.

``rounds`` copies the kept store and times rounds of 10,000 more new calls
each (after one untimed chain), as bench_store and compare.py do, printing per
round: µs per call (wall and CPU, user and system), and per call the bytes
written and read and the system calls made (from /proc/self/io): figures
that stay put on a busy machine, where timings do not. The first round is
reported but left out of the mean (its page cache is cold).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit  # noqa: E402
from bench_store import COMMIT_EVERY_CALLS, chain_ops  # noqa: E402

BUILD_CACHE_KIB = 8 * 1024 * 1024


def stored_calls(db_file: Path) -> int:
    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM memostore_calls").fetchone()[0])


def build(store_dir: Path, calls: int, kept: Path | None) -> None:
    """Grow a store to ``calls`` calls through the call path; see the module's docstring."""
    from memostore import Storage
    from memostore.backends import database

    store_dir.mkdir(parents=True, exist_ok=True)
    db_file = store_dir / "store.db"
    if kept is not None:
        shutil.copy(kept / "store.db", db_file)
    start = stored_calls(db_file) if db_file.exists() else 0
    configure = database.Database._configure

    def build_settings(self: Any, connection: Any) -> None:
        configure(self, connection)
        for pragma in ("cache_size=-%d" % BUILD_CACHE_KIB, "journal_mode=OFF", "synchronous=OFF"):
            connection.execute("PRAGMA " + pragma)

    database.Database._configure = build_settings  # this process only
    first, second = chain_ops()
    storage = Storage(db_path=db_file)
    began = time.perf_counter()
    for begin in range(start // 2, calls // 2, COMMIT_EVERY_CALLS // 2):
        with storage:
            for i in range(begin, min(begin + COMMIT_EVERY_CALLS // 2, calls // 2)):
                second(first(i))
    storage.close()
    with sqlite3.connect(db_file) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    emit("scale_build", stored_calls=stored_calls(db_file), wall_s=round(time.perf_counter() - began))


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as counters:
        return {key: int(value) for key, value in (line.split(": ") for line in counters)}


def one_round(storage: Any, ops: tuple[Any, Any], start: int) -> dict[str, float]:
    """10,000 new calls from chain ``start // 2`` on, commit included; costs per call."""
    first, second = ops
    io, usage = io_counters(), resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = time.perf_counter(), time.process_time()
    with storage:
        for i in range(start // 2, (start + COMMIT_EVERY_CALLS) // 2):
            second(first(i))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    io_after, usage_after = io_counters(), resource.getrusage(resource.RUSAGE_SELF)
    per_call = 1e6 / COMMIT_EVERY_CALLS
    return {"us_wall": wall * per_call, "us_cpu": cpu * per_call,
            "us_user": (usage_after.ru_utime - usage.ru_utime) * per_call,
            "us_sys": (usage_after.ru_stime - usage.ru_stime) * per_call,
            "kb_written": (io_after["wchar"] - io["wchar"]) / 1024 / COMMIT_EVERY_CALLS,
            "kb_read": (io_after["rchar"] - io["rchar"]) / 1024 / COMMIT_EVERY_CALLS,
            "syscalls": (io_after["syscw"] + io_after["syscr"] - io["syscw"] - io["syscr"]) / COMMIT_EVERY_CALLS}


def rounds(kept: Path, count: int, pragmas: list[str]) -> None:
    """Time ``count`` rounds of new calls on a copy of the kept store (see the module's docstring)."""
    from memostore import Storage
    from memostore.backends import database

    configure = database.Database._configure

    def with_pragmas(self: Any, connection: Any) -> None:
        configure(self, connection)
        for pragma in pragmas:
            connection.execute("PRAGMA " + pragma)

    database.Database._configure = with_pragmas
    with tempfile.TemporaryDirectory(dir=kept.parent) as tmp:
        db_file = Path(tmp) / "store.db"
        shutil.copy(kept / "store.db", db_file)
        start = stored_calls(db_file)
        storage, ops = Storage(db_path=db_file), chain_ops()
        with storage:
            ops[1](ops[0](start // 2))  # the process's one-time costs, untimed
        found = []
        for number in range(count):
            found.append(one_round(storage, ops, start + 2 + number * COMMIT_EVERY_CALLS))
            emit("scale_round", stored_calls=start, round=number, **{k: round(v, 1) for k, v in found[-1].items()})
        storage.close()
    mean = {key: round(sum(r[key] for r in found[1:]) / max(1, count - 1), 1) for key in found[0]}
    emit("scale_new_call", stored_calls=start, rounds=count - 1, pragmas=" ".join(pragmas), **mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "rounds"])
    parser.add_argument("store", type=Path, help="build: the new store's directory; rounds: a kept store's")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--from", dest="kept", type=Path, help="build: grow a copy of this kept store")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pragma", action="append", default=[], help="rounds: a SQLite setting to try")
    args = parser.parse_args()
    if args.command == "build":
        build(args.store, args.calls, args.kept)
    else:
        rounds(args.store, max(2, args.rounds), args.pragma)


if __name__ == "__main__":
    main()
