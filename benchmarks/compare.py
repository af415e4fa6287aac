"""Head-to-head: memostore against mandala and joblib.Memory, same machine, same run.

    python benchmarks/compare.py                      # every workload, medians of 3
    python benchmarks/compare.py --workloads W4 W5    # some of them; the rest keep their figures
    python benchmarks/compare.py --max-calls 10000000 # the growing store up to 10M calls (default 1M)
    python benchmarks/compare.py --max-calls 10000 --runs 1 --out /tmp/trial   # a quick trial run

Workloads:
  W1  new calls of a trivial op, in memory and on disk (µs per call)
  W2  the same calls again: same process, and a fresh process reopening the store
  W3  a 3-op pipeline (generate -> train -> evaluate, 20 x 25 grid), then cf.expand_all().df()
  W4  one store of a 2-op chain grown through the ordinary call path, committed every 10,000 calls, to
      1k, 10k, 100k, 1M (and 10M with --max-calls 10000000) calls; at each size: bytes on disk per stored
      call, cf(op).expand_all().df() in fresh processes (up to 1M; at the largest, also right after the
      store left the OS page cache: drop_caches where permitted, else posix_fadvise), and from 10k on the
      cost of 10,000 more new calls (µs per call, commit included). joblib: no frame.
  W5  one call on a 1 GiB numpy array: store, reload in a fresh process, bytes on disk
  W6  drop_calls of half of 10,000 calls, with dependents
  W7  16 calls of 0.25 s on 2 processes, each engine its own way
  W8  single lookups on an open store of 10,000 calls: unwrap one small value, load_ref, get_ref_creator,
      get_consumers (joblib: one cached result loaded by a hit; mandala: a hit then unwrap, and its own
      load_ref, get_ref_creator and get_consumers)

Every measurement runs in a fresh interpreter (benchmarks/peers.py); mandala runs
in its own virtual environment (benchmarks/.venv-mandala, made on first use)
because its pins differ from ours. A peer's run over 60 s is reported alone and
ends that peer's larger sizes. Figures are printed as JSON lines, kept in
benchmarks/results.json, and rendered to benchmarks/RESULTS.md and benchmarks/scaling.png.
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
from typing import Any, Callable

from bench_store import evict_page_cache, read_through

HERE = Path(__file__).resolve().parent
MANDALA_VENV = HERE / ".venv-mandala"
# pandas < 3: mandala's frames call DataFrame.applymap, which pandas 3 removed.
MANDALA_PACKAGES = ["pymandala==0.2.0a0", "pandas<3", "pyarrow", "tqdm", "graphviz", "ipython", "prettytable"]
PEER_BUDGET_S = 60.0
ENGINES = ("memostore", "joblib", "mandala")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")
W4_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
FRAME_MAX_CALLS = 1_000_000  # no frame over the 10M store: its table alone would take over 10 GB
NEW_CALLS_FROM = 10_000  # the growing store's new-call cost is measured from this size on
MAX_CALLS = 1_000_000  # the largest store any workload builds (--max-calls)

Figures = dict[str, Any]
NOT_APPLICABLE = {("joblib", "W6")}  # joblib.Memory cannot drop one call
NO_FRAME = {"joblib"}  # nor query its stored calls


def python_for(engine: str) -> str:
    if engine != "mandala":
        return sys.executable
    python = MANDALA_VENV / "bin" / "python"
    if not python.exists():
        venv.create(MANDALA_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MANDALA_PACKAGES], check=True)
    return str(python)


def run_task(engine: str, task: str, n: int, where: str, in_memory: bool = False) -> Figures:
    """One task in a fresh interpreter of the engine's environment; adds its wall time as ``wall_s``."""
    command = [python_for(engine), str(HERE / "peers.py"), engine, task, str(n), where]
    started = time.perf_counter()
    done = subprocess.run(command + (["memory"] if in_memory else []), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} {task} {n} failed:\n{done.stderr[-3000:]}")
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    return figures


def medians(runs: list[Figures]) -> Figures:
    """The median of each numeric figure over the runs (text figures from the first)."""
    result: Figures = {}
    for key, value in runs[0].items():
        numeric = isinstance(value, (int, float))
        result[key] = statistics.median(r[key] for r in runs) if numeric else value
    result["runs"] = len(runs)
    return result


def repeat(engine: str, runs: int, once: Callable[[str], Figures]) -> Figures:
    """``once(fresh temp dir)`` up to ``runs`` times; a peer's run over budget is reported alone."""
    results: list[Figures] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            results.append(once(tmp))
        if engine != "memostore" and time.perf_counter() - started > PEER_BUDGET_S:
            return {**medians(results), "over_budget": True}
    return medians(results)


# --- the workloads: engine -> size -> figures ------------------------------------------------------


def w1_w2(engine: str, runs: int) -> dict[str, Figures]:
    table: dict[str, Figures] = {}
    for place in ("memory", "disk"):
        for n in sizes((1_000, 10_000)):
            def once(tmp: str, place: str = place, n: int = n) -> Figures:
                in_memory = place == "memory"
                figures = {"W1 new calls": run_task(engine, "w1_cold", n, tmp, in_memory)["us_per_call"]}
                with tempfile.TemporaryDirectory() as other:
                    figures["W2 same process"] = run_task(engine, "w2_hit", n, other, in_memory)["us_per_call"]
                if not in_memory:  # the W1 run filled tmp; a fresh process reopens it
                    figures["W2 reopened"] = run_task(engine, "w2_reopen", n, tmp)["us_per_call"]
                return figures
            table[f"{place} {n}"] = figures = repeat(engine, runs, once)
            if figures.get("over_budget"):
                break
    return table


def w3(engine: str, runs: int) -> dict[str, Figures]:
    return {"1,020 calls": repeat(engine, runs, lambda tmp: run_task(engine, "w3_pipeline", 0, tmp))}


def sizes(candidates: tuple[int, ...]) -> list[int]:
    return [n for n in candidates if n <= MAX_CALLS]


def w4(engine: str, runs: int) -> dict[str, Figures]:
    """One store grown through the sizes (committed every 10,000 calls); at each: bytes per stored call,
    the frame (fresh processes, warm; and cold at the largest size up to 1M), then 10,000 more new calls."""
    table: dict[str, Figures] = {}
    frame_sizes = [n for n in sizes(W4_SIZES) if n <= FRAME_MAX_CALLS and engine not in NO_FRAME]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes(W4_SIZES):
            started = time.perf_counter()
            figures = run_task(engine, "w4_grow", n, tmp)
            figures["build_wall_s"] = figures.pop("wall_s")
            if n in frame_sizes:
                figures.update(frames(engine, n, tmp, runs, started, cold=n == frame_sizes[-1]))
            if n >= NEW_CALLS_FROM:
                figures["new_call_us"] = run_task(engine, "w4_more", n, tmp)["new_call_us"]
            figures["over_budget"] = engine != "memostore" and time.perf_counter() - started > PEER_BUDGET_S
            table[str(n)] = figures
            emit("W4", engine, str(n), figures)
            if figures["over_budget"]:
                break
    return table


def frames(engine: str, n: int, tmp: str, runs: int, started: float, cold: bool) -> Figures:
    """The frame in fresh processes with a warm page cache (up to ``runs``, within a peer's budget), then,
    if ``cold``, once right after the store left the page cache (which is then warmed again)."""
    queries = [run_task(engine, "w4_query", n, tmp)]
    while len(queries) < runs and (engine == "memostore" or time.perf_counter() - started < PEER_BUDGET_S):
        queries.append(run_task(engine, "w4_query", n, tmp))
    figures = medians(queries)
    if cold:
        how = evict_page_cache(Path(tmp))
        cold_query = run_task(engine, "w4_query", n, tmp)
        read_through(Path(tmp))
        figures.update(cold_seconds=cold_query["seconds"], cold_peak_mb=cold_query["peak_mb"], cold_how=how)
    return figures


def w5(engine: str, runs: int) -> dict[str, Figures]:
    def once(tmp: str) -> Figures:
        stored = run_task(engine, "w5_store", 0, tmp)
        reloaded = run_task(engine, "w5_reload", 0, tmp)
        baseline = run_task("memostore", "w5_baseline", 0, tmp)
        return {"store_s": stored["seconds"], "reload_s": reloaded["seconds"], "disk_bytes": stored["disk_bytes"],
                "np_save_hash_s": baseline["save_hash_s"], "np_load_hash_s": baseline["load_hash_s"],
                "np_save_fsync_hash_s": baseline["save_fsync_hash_s"]}
    return {"1 GiB": repeat(engine, runs, once)}


def w6(engine: str, runs: int) -> dict[str, Figures]:
    table: dict[str, Figures] = {}
    for n in sizes((1_000, 10_000)):
        def once(tmp: str, n: int = n) -> Figures:
            build = run_task(engine, "w4_build", n, tmp)
            return {**run_task(engine, "w6_drop", n, tmp), "build_s": build["build_s"]}
        table[str(n)] = figures = repeat(engine, runs, once)
        if figures.get("over_budget"):
            break
    return table


def w7(engine: str, runs: int) -> dict[str, Figures]:
    return {"16 x 0.25 s": repeat(engine, runs, lambda tmp: run_task(engine, "w7_map", 0, tmp)),
            "10,000 stored": repeat(engine, runs, lambda tmp: run_task(engine, "w7_rerun", 10_000, tmp))}


def w8(engine: str, runs: int) -> dict[str, Figures]:
    n = min(10_000, MAX_CALLS)
    return {f"{n:,} calls": repeat(engine, runs, lambda tmp: run_task(engine, "w8_single", n, tmp))}


RUNNERS: dict[str, Callable[[str, int], dict[str, Figures]]] = {
    "W1": w1_w2, "W3": w3, "W4": w4, "W5": w5, "W6": w6, "W7": w7, "W8": w8,
}


def emit(workload: str, engine: str, size: str, figures: Figures) -> None:
    print(json.dumps({"benchmark": "compare", "workload": workload, "engine": engine, "size": size,
                      **{k: round(v, 6) if isinstance(v, float) else v for k, v in figures.items()}}), flush=True)


def main() -> None:
    global MAX_CALLS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-calls", type=int, default=MAX_CALLS,
                        help="the largest store built (default 1,000,000; 10000000 adds the 10M store, about an "
                             "hour more; a small one makes a quick trial run)")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="the directory for results.json, RESULTS.md and scaling.png (default benchmarks/)")
    args = parser.parse_args()
    MAX_CALLS = args.max_calls
    args.out.mkdir(parents=True, exist_ok=True)
    results_json = args.out / "results.json"
    results: dict[str, Any] = json.loads(results_json.read_text()) if results_json.exists() else {}
    chosen = sorted({"W1" if w == "W2" else w for w in args.workloads})
    for workload in chosen:
        for engine in args.engines:
            if (engine, workload) in NOT_APPLICABLE:
                continue
            try:
                table = RUNNERS[workload](engine, args.runs)
            except RuntimeError as err:  # one engine failing a workload does not end the comparison
                print(err, file=sys.stderr)
                table = {"error": {"message": str(err).splitlines()[-1]}}
            results.setdefault(workload, {})[engine] = table
            if workload != "W4":  # W4 prints each size as it goes
                for size, figures in table.items():
                    emit(workload, engine, size, figures)
            results["machine"] = machine()
            results_json.write_text(json.dumps(results, indent=1, sort_keys=True))
    from report import write_report
    write_report(results, args.out / "RESULTS.md", args.out / "scaling.png")


def machine() -> dict[str, Any]:
    versions = {}
    for engine in ENGINES:
        code = ("import importlib.metadata as m; "
                f"print(m.version({'pymandala' if engine == 'mandala' else engine!r}))")
        versions[engine] = subprocess.run([python_for(engine), "-c", code], capture_output=True,
                                          text=True).stdout.strip()
    return {"platform": platform.platform(terse=True), "python": platform.python_version(),
            "cores": os.cpu_count(), "versions": versions, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
