"""What the run pages show: the store's runs, and one run's calls, through the public API."""

from __future__ import annotations

from typing import Any

from memostore import Storage
from memostore.viewer.pages import timestamp
from memostore.viewer.previews import load_values, preview

RUNS_ON_OVERVIEW = 50  # the latest runs listed on the overview
CALLS_PER_RUN_PAGE = 200  # calls listed on a run's page


def run_rows(storage: Storage) -> list[dict[str, Any]]:
    """The latest runs, newest first, with readable times and tags."""
    table = storage.runs().tail(RUNS_ON_OVERVIEW).iloc[::-1]
    rows: list[dict[str, Any]] = []
    for row in table.to_dict("records"):
        finished = row["finished_at"]
        rows.append({**row, "label": row["label"] if isinstance(row["label"], str) else "",
                     "started": timestamp(row["started_at"].timestamp()),
                     "duration": "unfinished" if finished is None or finished != finished
                     else f"{row['duration_s']:.2f} s",
                     "tags": ", ".join(f"{k}={v}" for k, v in sorted(row["tags"].items()))})
    return rows


def run_detail(storage: Storage, run_id: int) -> dict[str, Any]:
    """A run's page: its facts, and its calls (oldest first), each computed here or found stored."""
    info = storage.run_info(run_id)
    calls = storage.run_calls(run_id)
    loaded = storage.run_loaded_hids(run_id)
    shown = calls[:CALLS_PER_RUN_PAGE]
    values = load_values(storage, [ref for c in shown for ref in (*c.inputs.values(), *c.outputs.values())])
    rows = [{"call": c, "started": timestamp(c.started_at), "how": "found stored" if c.hid in loaded else
             ("failed here" if c.status == "failed" else "computed here"),
             "inputs": {n: preview(values[r.hid]) for n, r in sorted(c.inputs.items())},
             "outputs": {n: preview(values[r.hid]) for n, r in c.outputs.items()}} for c in shown]
    finished = info["finished_at"]
    return {"run": info, "rows": rows, "total": len(calls),
            "started": timestamp(info["started_at"]), "finished": timestamp(finished) or "unfinished",
            "duration": "" if finished is None else f"{finished - info['started_at']:.2f} s",
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(info["tags"].items()))}
