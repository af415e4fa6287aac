"""benchmarks/results.json -> RESULTS.md (tables, targets) and scaling.png (log-log plot).

    python benchmarks/report.py          # re-render without measuring again

Each row shows memostore's figure, each peer's beside it (with its multiple of memostore's), and
memostore's target marked ✓ (met) or ✗ (missed); a figure not measured shows —.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
PEERS = ("joblib", "mandala")
GIB = 2**30
KEPT_SECTIONS = ("dask-figures",)  # written by other scripts (bench_parallel.py --write-results), carried over as is
GROWTH_SIZES = ("10000", "100000", "1000000", "10000000")
FRAME_SIZES = ("1000", "10000", "100000", "1000000")
MILLION = "1000000"
RERUN = "10,000 stored"  # the parallel map's re-run, in the 16-call workload's table

Results = dict[str, Any]
Target = Optional[tuple[str, Callable[[float], bool]]]

sys.path.insert(0, str(HERE))
from _harness import marked_section  # noqa: E402


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _cell(figures: dict[str, Any] | None, key: str, ours: float | None, scale: float, digits: int) -> str:
    if not figures or figures.get(key) is None:
        return "—"
    value = figures[key] * scale
    text = _number(value, digits)
    if ours:
        text += f" ({value / ours:,.0f}x)" if value / ours >= 1.5 else f" ({value / ours:.1f}x)"
    if figures.get("over_budget"):
        text += " †"
    return text


def _goal(target: Target, ours: float | None) -> str:
    if target is None:
        return ""
    text, holds = target
    return f"{text} {'(not run)' if ours is None else '✓' if holds(ours) else '✗'}"


def _row(label: str, by_engine: dict[str, dict[str, Any]], size: str, key: str, scale: float = 1.0,
         digits: int = 1, target: Target = None) -> str:
    """One table row: memostore, each peer, and memostore's target with ✓ or ✗."""
    ours_figures = by_engine.get("memostore", {}).get(size)
    ours = None if not ours_figures or ours_figures.get(key) is None else ours_figures[key] * scale
    cells = ["—" if ours is None else _number(ours, digits)]
    cells += ["failed (results.json)" if "error" in by_engine.get(peer, {})
              else _cell(by_engine.get(peer, {}).get(size), key, ours, scale, digits) for peer in PEERS]
    return f"| {label} | " + " | ".join(cells) + f" | {_goal(target, ours)} |"


def _figure(results: Results, workload: str, size: str, key: str, engine: str = "memostore") -> float | None:
    value = results.get(workload, {}).get(engine, {}).get(size, {}).get(key)
    return None if value is None else float(value)


def write_report(results: Results, markdown: Path, plot: Path) -> None:
    old = markdown.read_text() if markdown.exists() else ""
    kept = [section for section in (marked_section(old, name) for name in KEPT_SECTIONS) if section]
    markdown.write_text(render_markdown(results) + "".join(f"\n{section}\n" for section in kept))
    draw_scaling(results, plot)


def render_markdown(results: Results) -> str:
    machine = results.get("machine", {})
    versions = machine.get("versions", {})
    lines = [
        "# memostore against its peers",
        "",
        f"Made by `python benchmarks/compare.py` on {machine.get('platform')}, Python {machine.get('python')}, "
        f"{machine.get('cores')} cores, {machine.get('date')}; memostore {versions.get('memostore')}, "
        f"joblib {versions.get('joblib')}, mandala (pymandala) {versions.get('mandala')}.",
        "Each figure is the median of 3 runs (results.json has the count), each in a fresh process; "
        "in brackets, the peer's figure as a multiple of memostore's (higher means memostore is faster or "
        "smaller). † marks a single run over 60 s, after which that peer's larger sizes were not tried. "
        "— means the peer has no such feature or the figure was not measured. The target is memostore's: "
        "✓ met, ✗ missed.",
        "",
        "| workload | memostore | joblib.Memory | mandala | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for section in (_call_rows, _growth_rows, _pipeline_rows, _frame_rows, _array_rows, _drop_rows,
                    _lookup_rows, _parallel_rows):
        lines += section(results)
    return "\n".join(lines + _notes(results))


def _call_rows(results: Results) -> list[str]:
    w1 = results.get("W1", {})
    lines = []
    for place in ("memory", "disk"):
        for n in ("1000", "10000"):
            size = f"{place} {n}"
            target: Target = ("≤ 50 µs", lambda v: v <= 50) if size == "disk 10000" else None
            lines.append(_row(f"New calls, {place}, {int(n):,} (µs/call)", w1, size, "W1 new calls", target=target))
    for n in ("1000", "10000"):
        lines.append(_row(f"Stored calls, same process, disk, {int(n):,} (µs/call)", w1, f"disk {n}",
                          "W2 same process", target=("≤ 20 µs", lambda v: v <= 20)))
        lines.append(_row(f"Stored calls, reopened store, disk, {int(n):,} (µs/call)", w1, f"disk {n}",
                          "W2 reopened", target=("≤ 50 µs", lambda v: v <= 50)))
    return lines


def _growth_rows(results: Results) -> list[str]:
    """A store of a 2-op chain growing to 10M calls: the cost of a new call, and bytes per stored call."""
    w4 = results.get("W4", {})
    at_10k = _figure(results, "W4", "10000", "new_call_us")
    lines = []
    for n in GROWTH_SIZES:
        target: Target = None
        if n == "10000":
            target = ("≤ 50 µs", lambda v: v <= 50)
        elif n in ("1000000", "10000000"):
            limit = 1.3 * at_10k if at_10k is not None else None
            target = (f"≤ 1.3 × its 10k cost = {limit:.1f} µs" if limit is not None else "≤ 1.3 × its 10k cost",
                      lambda v, limit=limit: limit is not None and v <= limit)
        lines.append(_row(f"New call on disk, store of {int(n):,} calls of a 2-op chain (µs/call, commit included)",
                          w4, n, "new_call_us", target=target))
    for n in GROWTH_SIZES:
        lines.append(_row(f"Bytes on disk per stored call, {int(n):,} calls", w4, n, "bytes_per_call", digits=0,
                          target=("≤ 400 bytes", lambda v: v <= 400)))
    return lines


def _pipeline_rows(results: Results) -> list[str]:
    w3 = results.get("W3", {})
    return [_row("A 3-op pipeline, 1,020 new calls (s)", w3, "1,020 calls", "pipeline_s", digits=2),
            _row("The same pipeline again, all stored (s)", w3, "1,020 calls", "rerun_s", digits=3),
            _row("Its table: `cf(evaluate).expand_all().df()` (s)", w3, "1,020 calls", "cf_df_s", digits=2)]


def _frame_rows(results: Results) -> list[str]:
    """The table of a whole store, warm and cold page cache, its peak memory, and its growth."""
    w4 = results.get("W4", {})
    lines = []
    for n in FRAME_SIZES:
        target: Target = ("< 4 s", lambda v: v < 4) if n == MILLION else None
        lines.append(_row(f"Table of a whole store: `cf(op).expand_all().df()`, {int(n):,} calls (s)", w4, n,
                          "seconds", digits=2, target=target))
    lines.append(_row("The same table right after the page cache was dropped, 1,000,000 calls (s)", w4, MILLION,
                      "cold_seconds", digits=2, target=("< 8 s", lambda v: v < 8)))
    lines.append(_row("The same table, peak memory, 1,000,000 calls (MB)", w4, MILLION, "peak_mb", digits=0,
                      target=("< 2 GB (2,048 MB)", lambda v: v < 2048)))
    sizes = ("10000", "100000", MILLION)
    per_call = [v / int(n) * 1e6 for n in sizes if (v := _figure(results, "W4", n, "seconds")) is not None]
    if len(per_call) == len(sizes):
        # Linear growth: a call costs no more at 1M than at 10k (fixed costs fade), nor much more than at 100k.
        linear = per_call[2] <= per_call[0] and per_call[2] <= 1.5 * per_call[1]
        lines.append(f"| Table of a whole store, cost per stored call at 10k → 100k → 1M calls (µs) | "
                     f"{' → '.join(f'{v:.1f}' for v in per_call)} | — | — | linear from 10k "
                     f"{'✓' if linear else '✗'} |")
    return lines


def _array_rows(results: Results) -> list[str]:
    w5 = results.get("W5", {})
    ours5 = w5.get("memostore", {}).get("1 GiB", {})
    if not ours5:
        return []
    save_limit, load_limit = 2 * ours5["np_save_hash_s"], 2 * ours5["np_load_hash_s"]
    return [
        _row("Store a 1 GiB array (s)", w5, "1 GiB", "store_s", digits=2,
             target=(f"≤ 2 × np.save+xxh3 = {save_limit:.2f} s", lambda v: v <= save_limit)),
        f"| np.save + fsync + xxh3 of the same array, for reference (s) | {ours5['np_save_fsync_hash_s']:.2f} "
        "| | | what an fsync per blob would cost; memostore, like SQLite's synchronous=NORMAL, does not fsync "
        "and checks blob sizes on load |",
        _row("Reload it in a fresh process (s)", w5, "1 GiB", "reload_s", digits=2,
             target=(f"≤ 2 × np.load+xxh3 = {load_limit:.2f} s", lambda v: v <= load_limit)),
        _row("The array's bytes on disk (GiB)", w5, "1 GiB", "disk_bytes", scale=1 / GIB, digits=2,
             target=("one copy", lambda v: v < 1.05)),
    ]


def _drop_rows(results: Results) -> list[str]:
    w6 = results.get("W6", {})
    return [_row("Drop half of 1,000 calls with dependents (s)", w6, "1000", "seconds", digits=3),
            _row("Drop half of 10,000 calls with dependents (s)", w6, "10000", "seconds", digits=3,
                 target=("< 0.1 s", lambda v: v < 0.1))]


def _lookup_rows(results: Results) -> list[str]:
    w8 = results.get("W8", {})
    return [_row(f"{label}, open store of 10,000 calls", w8, "10,000 calls", key, target=("≤ 20 µs", lambda v: v <= 20))
            for key, label in (("unwrap_us", "Load one small stored value: `unwrap(ref)` (µs)"),
                               ("load_ref_us", "`load_ref(hid)` (µs)"),
                               ("get_ref_creator_us", "`get_ref_creator(ref)` (µs)"),
                               ("get_consumers_us", "`get_consumers(ref)` (µs)"))]


def _parallel_rows(results: Results) -> list[str]:
    w7 = results.get("W7", {})
    joblib_s = _figure(results, "W7", "16 x 0.25 s", "seconds", engine="joblib")
    target: Target = None if joblib_s is None else (f"≤ joblib's {joblib_s:.2f} s", lambda v: v <= joblib_s)
    return [_row("16 calls of 0.25 s on 2 processes (s)", w7, "16 x 0.25 s", "seconds", digits=2, target=target),
            _row("The same map over 10,000 items, all stored (s)", w7, RERUN, "seconds", digits=3,
                 target=("< 0.2 s", lambda v: v < 0.2))]


def _notes(results: Results) -> list[str]:
    w7 = results.get("W7", {})
    cold_how = results.get("W4", {}).get("memostore", {}).get(MILLION, {}).get("cold_how", "—")
    lines = ["", "How each engine ran the 16 calls on 2 processes:", ""]
    lines += [f"- {engine}: {table.get('16 x 0.25 s', {}).get('how', '—')}" for engine, table in w7.items()]
    return lines + [
        "",
        "Notes:",
        "- joblib.Memory has no in-memory store (its 'memory' rows use a directory), no query over stored calls "
        "(the table rows) and no way to drop one call; its single lookup is loading one cached result by a hit.",
        "- mandala's `unwrap` row is a hit then unwrap; its other single lookups are its own `load_ref`, "
        "`get_ref_creator` and `get_consumers`.",
        "- The growing store: one store per engine of a 2-op chain (`double(inc(i))`), grown through each "
        "engine's ordinary call path and committed every 10,000 calls. At each size a fresh process makes "
        "10,000 more new calls after one untimed new chain (one measurement, not a median); "
        "bytes on disk count every file and directory as `du` does. The 10,000,000-call size runs with "
        "`--max-calls 10000000`; the whole-store table is not measured there.",
        "- Whole-store tables run in a fresh process after pandas is imported, over the growing store at each size. "
        f"The page cache was dropped by: {cold_how}. Build times are in results.json.",
        "- ![time against store size](scaling.png)",
        "",
    ]


def draw_scaling(results: Results, path: Path) -> None:
    """Log-log against store size: the whole-store table's time, and the cost of a new call in the growing store."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"memostore": "tab:green", "joblib": "tab:blue", "mandala": "tab:orange"}
    for engine, table in results.get("W4", {}).items():
        frames = sorted(int(n) for n, f in table.items() if isinstance(f, dict) and f.get("seconds") is not None)
        growth = sorted(int(n) for n, f in table.items() if isinstance(f, dict) and f.get("new_call_us") is not None)
        if frames:
            left.plot(frames, [table[str(n)]["seconds"] for n in frames], marker="o", label=engine,
                      color=colors[engine])
        if growth:
            right.plot(growth, [table[str(n)]["new_call_us"] for n in growth], marker="o", label=engine,
                       color=colors[engine])
    cold = _figure(results, "W4", MILLION, "cold_seconds")
    if cold is not None:
        left.plot([int(MILLION)], [cold], marker="s", linestyle="none", color="tab:red",
                  label="memostore, page cache dropped")
    left.axhline(4, color="grey", linestyle=":", label="target at 1M: 4 s warm")
    left.axhline(8, color="tab:red", linestyle=":", label="target at 1M: 8 s cold")
    left.set(xscale="log", yscale="log", xlabel="stored calls", ylabel="seconds",
             title="Table of a whole store: cf(op).expand_all().df()")
    right.axhline(50, color="grey", linestyle=":", label="target at 10k: 50 µs")
    at_10k = _figure(results, "W4", "10000", "new_call_us")
    if at_10k is not None:
        right.axhline(1.3 * at_10k, color="tab:green", linestyle=":", label="target at 1M, 10M: 1.3 × its 10k cost")
    right.set(xscale="log", yscale="log", xlabel="stored calls", ylabel="µs per new call", xlim=(5e3, 2e7),
              title="A new call on disk as the store grows")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    write_report(json.loads((HERE / "results.json").read_text()), HERE / "RESULTS.md", HERE / "scaling.png")
