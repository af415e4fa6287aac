"""Head-to-head: memostore against mandala and joblib.Memory, same machine, same run.

    python benchmarks/compare.py [--sizes 1000 10000] [--runs 3] [--results benchmarks/RESULTS.md]

Workloads done so far (issue 6 lists W1-W7):
  W1  new calls of a trivial op: in memory and on disk, per call
  W2  the same calls again: in the same process, and after reopening the store in a fresh process

mandala runs in its own virtual environment (benchmarks/.venv-mandala, made on
first use from PyPI's pymandala) because its pins differ from ours. A run that
takes over 60 s is reported alone (not a median) and no larger size is tried.
Each other figure is the median of --runs runs; every measurement is printed as a JSON line and the
medians are written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANDALA_VENV = HERE / ".venv-mandala"
MANDALA_PACKAGES = ["pymandala==0.2.0a0", "pyarrow", "tqdm", "graphviz", "ipython", "prettytable"]
PEER_BUDGET_S = 60.0
ENGINES = ("memostore", "joblib", "mandala")

# --- what runs in the measured process, one engine at a time --------------------


def _memostore(where: str | None):
    from memostore import Storage, op

    @op(version="1")
    def inc(x):
        return x + 1

    storage = Storage(db_path=where) if where else Storage()

    def run(n):
        with storage:
            for i in range(n):
                inc(i)

    return run


def _joblib(where: str | None):
    from joblib import Memory

    memory = Memory(where or tempfile.mkdtemp(), verbose=0)

    def inc(x):
        return x + 1

    cached = memory.cache(inc)

    def run(n):
        for i in range(n):
            cached(i)

    return run


def _mandala(where: str | None):
    from mandala.imports import Storage, op

    @op
    def inc(x):
        return x + 1

    storage = Storage(db_path=where) if where else Storage()

    def run(n):
        with storage:
            for i in range(n):
                inc(i)

    return run


def measure(engine: str, phase: str, n: int, where: str | None) -> float:
    """Seconds per call of one phase: "cold" (new calls) or "hit" (the same calls again)."""
    run = {"memostore": _memostore, "joblib": _joblib, "mandala": _mandala}[engine](where)
    if phase == "hit":
        run(n)
    start = time.perf_counter()
    run(n)
    return (time.perf_counter() - start) / n


# --- the driver ------------------------------------------------------------------


def python_for(engine: str) -> str:
    if engine != "mandala":
        return sys.executable
    python = MANDALA_VENV / "bin" / "python"
    if not python.exists():
        venv.create(MANDALA_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MANDALA_PACKAGES], check=True)
    return str(python)


def in_process(engine: str, phase: str, n: int, where: str | None) -> float:
    """Run one measurement in a fresh interpreter of the engine's environment."""
    command = [python_for(engine), __file__, "--measure", engine, phase, str(n), where or ""]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def workload_w1_w2(engine: str, n: int, on_disk: bool) -> dict[str, float]:
    """W1 cold, W2 hit in process, W2 hit after reopening in a fresh process (s per call)."""
    with tempfile.TemporaryDirectory() as tmp:
        where = str(Path(tmp) / ("store.db" if engine != "joblib" else "cache")) if on_disk else None
        figures = {"W1 new calls": in_process(engine, "cold", n, where),
                   "W2 same process": in_process(engine, "hit", n, where)}
        if on_disk:  # the W1 run filled the store; a new process reopens it
            figures["W2 reopened"] = in_process(engine, "reopen", n, where)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)  # internal: child mode
    args = parser.parse_args()
    if args.measure:
        engine, phase, n, where = args.measure
        if phase == "reopen":
            print(_reopened(engine, int(n), where))
        else:
            print(measure(engine, phase, int(n), where or None))
        return
    table: dict[tuple[str, str, int], dict[str, float]] = {}
    for on_disk in (False, True):
        place = "disk" if on_disk else "memory"
        for engine in args.engines:
            for n in args.sizes:
                runs, slow = [], False
                for _ in range(args.runs):
                    started = time.perf_counter()
                    runs.append(workload_w1_w2(engine, n, on_disk))
                    slow = time.perf_counter() - started > PEER_BUDGET_S
                    if slow:
                        break  # one run over budget: report it alone, and try no larger size
                medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                table[(engine, place, n)] = medians
                for name, seconds in medians.items():
                    print(json.dumps({"benchmark": "compare", "workload": name, "engine": engine, "store": place,
                                      "n": n, "us_per_call": round(seconds * 1e6, 2)}), flush=True)
                if slow:
                    break
    Path(args.results).write_text(render(table, args))


def _reopened(engine: str, n: int, where: str) -> float:
    """Hit path in this fresh process on a store filled by another one."""
    run = {"memostore": _memostore, "joblib": _joblib, "mandala": _mandala}[engine](where)
    start = time.perf_counter()
    run(n)
    return (time.perf_counter() - start) / n


def render(table: dict[tuple[str, str, int], dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        "# memostore against its peers",
        "",
        f"Made by `python benchmarks/compare.py --sizes {' '.join(map(str, args.sizes))} --runs {args.runs}`"
        f" on {platform.platform(terse=True)}, Python {platform.python_version()}, {os.cpu_count()} cores;"
        " medians of the runs, in µs per call (lower is better), and each peer's time as a multiple of memostore's.",
        "",
        "| workload | store | calls | memostore | joblib.Memory | mandala |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    workloads = sorted({w for figures in table.values() for w in figures})
    for place in ("memory", "disk"):
        for n in args.sizes:
            for workload in workloads:
                ours = table.get(("memostore", place, n), {}).get(workload)
                if ours is None:
                    continue
                cells = [f"{ours * 1e6:.1f}"]
                for engine in ("joblib", "mandala"):
                    theirs = table.get((engine, place, n), {}).get(workload)
                    cells.append("—" if theirs is None else f"{theirs * 1e6:.1f} ({theirs / ours:.0f}x)")
                lines.append(f"| {workload} | {place} | {n:,} | " + " | ".join(cells) + " |")
    lines += ["", "joblib.Memory has no in-memory store: its 'memory' rows use a temporary directory.",
              "A peer's figure from a run over 60 s is that single run, not a median of several.",
              "Workloads W3-W7 of issue 6 are not measured yet.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
