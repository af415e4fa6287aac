"""Single lookups as compare.py's W8 measures them, by CPU time or by instructions executed.

    python benchmarks/bench_lookups.py [--calls 10000] [--reopen] [--callgrind]

Builds a store of ``--calls`` calls of one op in this process, committed in one block, as W8 does
(its write-ahead log then holds the new pages), or with ``--reopen`` closes it and opens it again
(a store opened anew: its log is empty, and SQLite then asks the file's size once per statement, a
system call). Then, per lookup (unwrap of one small value, load_ref, get_ref_creator,
get_consumers, each over the same 1,000 refs as W8): CPU µs, the best of 5 passes (the collector
off), or with ``--callgrind`` the instructions of one pass, counted by valgrind's callgrind, which
neither the machine's load nor its other tenants change (the run takes about a minute). Prints
JSON lines.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).parent))
from _harness import emit, timed, use_cpu_clock  # noqa: E402
from bench_store import inc  # noqa: E402

from memostore import Storage, op  # noqa: E402

LOOKUPS = 1_000
PASSES = 5
MARKER = "adler32"  # under callgrind, a statistics dump before each call of this C function: zlib.adler32


def lookups(storage: Storage, n: int) -> dict[str, tuple[Callable[[Any], Any], list[Any]]]:
    """W8's lookups (benchmarks/peers.py ``single_lookups``), each with its items."""
    f = op(inc)
    with storage:
        results = [f(i) for i in range(n)]
    hids = [results[i].hid for i in range(0, n, max(1, n // LOOKUPS))]
    lazy = [storage.load_ref(hid) for hid in hids]
    inputs = [call.inputs["x"] for call in map(storage.get_ref_creator, lazy)]
    return {"unwrap": (lambda ref: storage.unwrap(ref.detached()), lazy),
            "load_ref": (storage.load_ref, hids),
            "get_ref_creator": (storage.get_ref_creator, lazy),
            "get_consumers": (storage.get_consumers, inputs)}


def run(where: Path, n: int, reopen: bool, counted: bool) -> dict[str, float]:
    """µs per lookup (CPU, best of PASSES); ``counted``: one pass of each between two MARKER calls."""
    storage = Storage(db_path=where / "store.db")
    work = lookups(storage, n)
    if reopen:  # the last connection folds the log into the file and removes it; the next use reopens one
        storage.close()
    figures: dict[str, float] = {}
    for name, (lookup, items) in work.items():
        [lookup(item) for item in items]  # warm: statements compiled, pages cached
        gc.collect()
        gc.disable()
        if counted:
            zlib.adler32(b"begin")
            [lookup(item) for item in items]
            zlib.adler32(b"end")
        else:
            best = min(timed(lambda: [lookup(item) for item in items]) for _ in range(PASSES))  # noqa: B023
            figures[f"{name}_us"] = best / len(items) * 1e6
        gc.enable()
    return figures


def callgrind(args: argparse.Namespace, where: Path) -> dict[str, float]:
    """This script again under callgrind; instructions per lookup from the dumps between markers."""
    command = ["valgrind", "--tool=callgrind", f"--dump-before={MARKER}", "-q",
               f"--callgrind-out-file={where}/callgrind.%p", sys.executable, __file__, "--calls", str(args.calls),
               "--counted"] + (["--reopen"] if args.reopen else [])
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    dumps = sorted(where.glob("callgrind.*.*"), key=lambda p: int(p.suffix[1:]))
    totals = [int(next(line for line in p.read_text().splitlines() if line.startswith("totals:")).split()[1])
              for p in dumps]
    # Dump 1 is everything up to the first marker; then the pass of each lookup, and what came between.
    names = ["unwrap", "load_ref", "get_ref_creator", "get_consumers"]
    return {f"{name}_instructions": totals[1 + 2 * k] / LOOKUPS for k, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--reopen", action="store_true", help="look up in the store opened anew")
    parser.add_argument("--callgrind", action="store_true", help="instructions per lookup under valgrind")
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)  # the run under valgrind
    args = parser.parse_args()
    use_cpu_clock()
    with tempfile.TemporaryDirectory() as tmp:
        if args.counted:
            run(Path(tmp), args.calls, args.reopen, counted=True)
            return
        figures = callgrind(args, Path(tmp)) if args.callgrind else run(Path(tmp), args.calls, args.reopen, False)
    emit("single_lookups", calls=args.calls, store="reopened" if args.reopen else "just built",
         **{k: round(v, 2) for k, v in figures.items()})


if __name__ == "__main__":
    main()
