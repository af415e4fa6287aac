"""benchmarks/results.json -> RESULTS.md (tables, targets) and scaling.png (log-log plot).

    python benchmarks/report.py          # re-render without measuring again
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
PEERS = ("joblib", "mandala")
GIB = 2**30
KEPT_SECTIONS = ("dask-figures",)  # written by other scripts (bench_parallel.py --write-results), carried over as is

sys.path.insert(0, str(HERE))
from _harness import marked_section  # noqa: E402


def _cell(figures: dict[str, Any] | None, key: str, ours: float | None, scale: float, digits: int) -> str:
    if not figures or figures.get(key) is None:
        return "—"
    value = figures[key] * scale
    text = f"{value:,.{digits}f}"
    if ours:
        text += f" ({value / ours:,.0f}x)" if value / ours >= 1.5 else f" ({value / ours:.1f}x)"
    if figures.get("over_budget"):
        text += " †"
    return text


def _row(label: str, by_engine: dict[str, dict[str, Any]], size: str, key: str, scale: float = 1.0,
         digits: int = 1, target: tuple[str, Callable[[float], bool]] | None = None) -> str:
    ours_figures = by_engine.get("memostore", {}).get(size)
    ours = None if not ours_figures or ours_figures.get(key) is None else ours_figures[key] * scale
    cells = ["—" if ours is None else f"{ours:,.{digits}f}"]
    cells += ["failed (results.json)" if "error" in by_engine.get(peer, {})
              else _cell(by_engine.get(peer, {}).get(size), key, ours, scale, digits) for peer in PEERS]
    goal = ""
    if target is not None:
        text, holds = target
        goal = f"{text} {'✓' if ours is not None and holds(ours) else '✗'}"
    return f"| {label} | " + " | ".join(cells) + f" | {goal} |"


def write_report(results: dict[str, Any], markdown: Path, plot: Path) -> None:
    old = markdown.read_text() if markdown.exists() else ""
    kept = [section for section in (marked_section(old, name) for name in KEPT_SECTIONS) if section]
    markdown.write_text(render_markdown(results) + "".join(f"\n{section}\n" for section in kept))
    draw_scaling(results, plot)


def render_markdown(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    versions = machine.get("versions", {})
    lines = [
        "# memostore against its peers",
        "",
        f"Made by `python benchmarks/compare.py` on {machine.get('platform')}, Python {machine.get('python')}, "
        f"{machine.get('cores')} cores, {machine.get('date')}; memostore {versions.get('memostore')}, "
        f"joblib {versions.get('joblib')}, mandala (pymandala) {versions.get('mandala')}.",
        "Each figure is the median of 3 runs (results.json has the count), each in a fresh process; "
        "in brackets, the peer's figure as a multiple of memostore's (higher means memostore is faster). "
        "† marks a single run over 60 s, after which that peer's larger sizes were not tried. "
        "— means the peer has no such feature or was not run.",
        "",
        "| workload | memostore | joblib.Memory | mandala | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    w1 = results.get("W1", {})
    for place in ("memory", "disk"):
        for n in ("1000", "10000"):
            size = f"{place} {n}"
            target = ("≤ 50 µs", lambda v: v <= 50) if size == "disk 10000" else None
            lines.append(_row(f"New calls, {place}, {int(n):,} (µs/call)", w1, size, "W1 new calls",
                              target=target))
    for n in ("1000", "10000"):
        lines.append(_row(f"Stored calls, same process, disk, {int(n):,} (µs/call)", w1, f"disk {n}", "W2 same process",
                          target=("≤ 20 µs", lambda v: v <= 20)))
        lines.append(_row(f"Stored calls, reopened store, disk, {int(n):,} (µs/call)", w1, f"disk {n}", "W2 reopened",
                          target=("≤ 50 µs", lambda v: v <= 50)))
    w3 = results.get("W3", {})
    lines.append(_row("A 3-op pipeline, 1,020 new calls (s)", w3, "1,020 calls", "pipeline_s", digits=2))
    lines.append(_row("The same pipeline again, all stored (s)", w3, "1,020 calls", "rerun_s", digits=3))
    lines.append(_row("Its table: `cf(evaluate).expand_all().df()` (s)", w3, "1,020 calls", "cf_df_s", digits=2))
    w4 = results.get("W4", {})
    for n in ("1000", "10000", "100000", "1000000"):
        target = ("< 4 s", lambda v: v < 4) if n == "1000000" else None
        lines.append(_row(f"Table of a whole store: `cf.expand_all().df()`, {int(n):,} calls (s)", w4, n,
                          "seconds", digits=2, target=target))
    per_call = [w4.get("memostore", {}).get(n, {}).get("seconds", 0) / int(n) * 1e6
                for n in ("10000", "100000", "1000000")]
    if all(per_call):
        # Linear growth: a call costs no more at 1M than at 10k (fixed costs fade), nor much more than at 100k.
        linear = per_call[2] <= per_call[0] and per_call[2] <= 1.5 * per_call[1]
        lines.append(f"| Table of a whole store, cost per stored call at 10k → 100k → 1M calls (µs) | "
                     f"{' → '.join(f'{v:.1f}' for v in per_call)} | — | — | linear from 10k "
                     f"{'✓' if linear else '✗'} |")
    mem_1m = w4.get("memostore", {}).get("1000000", {}).get("peak_mb")
    if mem_1m is not None:
        lines.append(f"| Table of a whole store, peak memory, 1,000,000 calls (MB) | {mem_1m:,.0f} | — | — "
                     f"| < 4,096 MB {'✓' if mem_1m < 4096 else '✗'} |")
    w5 = results.get("W5", {})
    ours5 = w5.get("memostore", {}).get("1 GiB", {})
    if ours5:
        save_limit, load_limit = 2 * ours5["np_save_hash_s"], 2 * ours5["np_load_hash_s"]
        lines.append(_row("Store a 1 GiB array (s)", w5, "1 GiB", "store_s", digits=2,
                          target=(f"≤ 2 × np.save+xxh3 = {save_limit:.2f} s", lambda v: v <= save_limit)))
        lines.append(f"| np.save + fsync + xxh3 of the same array, for reference (s) | "
                     f"{ours5['np_save_fsync_hash_s']:.2f} | | | what an fsync per blob would cost; memostore, "
                     "like SQLite's synchronous=NORMAL, does not fsync and checks blob sizes on load |")
        lines.append(_row("Reload it in a fresh process (s)", w5, "1 GiB", "reload_s", digits=2,
                          target=(f"≤ 2 × np.load+xxh3 = {load_limit:.2f} s", lambda v: v <= load_limit)))
        lines.append(_row("The array's bytes on disk (GiB)", w5, "1 GiB", "disk_bytes", scale=1 / GIB, digits=2,
                          target=("one copy", lambda v: v < 1.05)))
    w6 = results.get("W6", {})
    lines.append(_row("Drop half of 1,000 calls with dependents (s)", w6, "1000", "seconds", digits=3))
    lines.append(_row("Drop half of 10,000 calls with dependents (s)", w6, "10000", "seconds", digits=3,
                      target=("< 0.1 s", lambda v: v < 0.1)))
    w7 = results.get("W7", {})
    joblib_w7 = w7.get("joblib", {}).get("16 x 0.25 s", {}).get("seconds")
    lines.append(_row("16 calls of 0.25 s on 2 processes (s)", w7, "16 x 0.25 s", "seconds", digits=2,
                      target=None if joblib_w7 is None else
                      (f"≤ joblib's {joblib_w7:.2f} s", lambda v: v <= joblib_w7)))
    w8 = results.get("W8", {})
    for key, label in (("unwrap_us", "Load one small stored value: `unwrap(ref)` (µs)"),
                       ("load_ref_us", "`load_ref(hid)` (µs)"), ("get_ref_creator_us", "`get_ref_creator(ref)` (µs)"),
                       ("get_consumers_us", "`get_consumers(ref)` (µs)")):
        lines.append(_row(f"{label}, open store of 10,000 calls", w8, "10,000 calls", key,
                          target=("≤ 20 µs", lambda v: v <= 20)))
    lines += ["", "How each engine ran the 16 calls on 2 processes:", ""]
    for engine, table in w7.items():
        lines.append(f"- {engine}: {table.get('16 x 0.25 s', {}).get('how', '—')}")
    lines += [
        "",
        "Notes:",
        "- joblib.Memory has no in-memory store (its 'memory' rows use a directory), no query over stored calls "
        "(the table rows) and no way to drop one call; its single lookup is loading one cached result by a hit.",
        "- mandala's `unwrap` row is a hit then unwrap; its other single lookups are its own `load_ref`, "
        "`get_ref_creator` and `get_consumers`.",
        "- The stores of the whole-store table rows are built through each engine's ordinary call path; "
        "build times are in results.json.",
        "- ![time against store size](scaling.png)",
        "",
    ]
    return "\n".join(lines)


def draw_scaling(results: dict[str, Any], path: Path) -> None:
    """Log-log against store size: the whole-store table's time, and the cost per new call while building its stores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"memostore": "tab:green", "joblib": "tab:blue", "mandala": "tab:orange"}
    for engine, table in results.get("W4", {}).items():
        sizes = sorted(int(n) for n in table)
        left.plot(sizes, [table[str(n)]["seconds"] for n in sizes], marker="o", label=engine, color=colors[engine])
        right.plot(sizes, [table[str(n)]["build_s"] / n * 1e6 for n in sizes], marker="o", label=engine,
                   color=colors[engine])
    left.axhline(4, color="grey", linestyle=":", label="target at 1M: 4 s")
    left.set(xscale="log", yscale="log", xlabel="stored calls", ylabel="seconds",
             title="Table of a whole store: cf(op).expand_all().df()")
    right.axhline(50, color="grey", linestyle=":", label="target: 50 µs at 10k, flat")
    right.set(xscale="log", yscale="log", xlabel="calls in the store being built", ylabel="µs per new call",
              title="New calls on disk while building those stores")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    write_report(json.loads((HERE / "results.json").read_text()), HERE / "RESULTS.md", HERE / "scaling.png")
