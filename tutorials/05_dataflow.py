# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A feature dataflow: a configuration switch, lineage, and what an edit recomputes
#
# Features of GPS tracks (the distance and speed between consecutive
# positions) feed a model of each track's mode of transport. One step has
# two implementations, chosen by configuration: smoothing by a rolling
# median or by an exponential average. They are two ops, not two versions
# of one: both stay current, and the store keeps each branch's results
# apart. Every result knows the calls and code versions that made it, and
# before changing a helper you can see which stored results it would make
# stale.
#
# Run it with `python tutorials/05_dataflow.py`, from any folder, or open it
# as a notebook (`jupytext --to ipynb tutorials/05_dataflow.py`). The store
# goes under `tutorials/output/` (or `MEMOSTORE_TUTORIAL_DIR`) and is kept:
# a second run computes nothing.

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from memostore import Storage, op

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "dataflow.db"
# deps_path="__main__": an op's version also covers the helpers and constants it uses in this file.
storage = Storage(db_path=db_path, deps_path="__main__")
computed = []  # what each block computed, from storage.last_run

# %% [markdown]
# ## The dataflow
# Each step is an op; steps are wired by passing results along. `SMOOTHERS`
# is the configuration switch: the name picks one of two distinct ops.

# %%
SECONDS_PER_FIX = 10.0


@op
def raw_tracks(n_tracks: int, fixes: int, seed: int) -> pd.DataFrame:
    """Synthetic GPS tracks: walkers, cyclists and drivers, with noisy positions."""
    rng = np.random.default_rng(seed)
    rows = []
    for track in range(n_tracks):
        mode = ["walk", "bike", "car"][track % 3]
        speed = {"walk": 1.4, "bike": 3.0, "car": 5.0}[mode]
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.2, fixes))
        step = speed * SECONDS_PER_FIX * rng.lognormal(0, 0.6, fixes)
        x, y = np.cumsum(step * np.cos(heading)), np.cumsum(step * np.sin(heading))
        rows.append(pd.DataFrame({"track": track, "mode": mode, "t": np.arange(fixes) * SECONDS_PER_FIX,
                                  "x": x + rng.normal(0, 20, fixes), "y": y + rng.normal(0, 20, fixes)}))
    return pd.concat(rows, ignore_index=True)


def jump_lengths(frame: pd.DataFrame) -> np.ndarray:
    """Distance between consecutive positions of each track (NaN at each track's start)."""
    steps = np.hypot(frame.groupby("track")["x"].diff(), frame.groupby("track")["y"].diff())
    return steps.to_numpy()


@op
def location_jump(tracks: pd.DataFrame) -> pd.DataFrame:
    return tracks.assign(jump=jump_lengths(tracks))


@op
def smooth_rolling(jumps: pd.DataFrame, window: int) -> pd.DataFrame:
    smoothed = jumps.groupby("track")["jump"].transform(lambda s: s.rolling(window, min_periods=1).median())
    return jumps.assign(jump=smoothed)


@op
def smooth_ewm(jumps: pd.DataFrame, window: int) -> pd.DataFrame:
    smoothed = jumps.groupby("track")["jump"].transform(lambda s: s.ewm(span=window).mean())
    return jumps.assign(jump=smoothed)


SMOOTHERS = {"rolling": smooth_rolling, "ewm": smooth_ewm}


@op
def track_features(smoothed: pd.DataFrame) -> pd.DataFrame:
    speed = smoothed["jump"] / SECONDS_PER_FIX
    per_track = smoothed.assign(speed=speed).groupby("track")
    return pd.DataFrame({"mode": per_track["mode"].first(), "median_speed": per_track["speed"].median(),
                         "p90_speed": per_track["speed"].quantile(0.9)})


@op
def mode_accuracy(features: pd.DataFrame, folds: int = 5) -> float:
    model = LogisticRegression(max_iter=1000)
    X, y = np.log1p(features[["median_speed", "p90_speed"]].to_numpy()), features["mode"]
    return float(cross_val_score(model, X, y, cv=folds).mean())


def run(smoother: str, window: int):
    """The dataflow under one configuration; returns the accuracy's Ref."""
    with storage:
        jumps = location_jump(raw_tracks(n_tracks=60, fixes=40, seed=7))
        smoothed = SMOOTHERS[smoother](jumps, window)
        accuracy = mode_accuracy(track_features(smoothed))
    computed.append(storage.last_run.computed)
    return accuracy


# %% [markdown]
# ## Run every configuration
# The two smoothers share the raw tracks and the jumps: those are computed
# once, whatever the configuration.

# %%
configurations = [(smoother, window) for smoother in SMOOTHERS for window in (3, 9)]
results = {config: run(*config) for config in configurations}
for (smoother, window), accuracy in results.items():
    print(f"{smoother:>8} window={window}: accuracy {storage.unwrap(accuracy):.3f}")
print(f"Computed {sum(computed)} calls for {len(configurations)} configurations")

# %% [markdown]
# ## Two implementations are two ops, both current
# Neither smoother makes the other stale (no stored call of either is of an
# old version), and each op lists its own calls.

# %%
print(storage.ops()[["op", "versions", "calls"]].to_string(index=False))
stale_smoothing = storage.stale_calls(smooth_rolling) + storage.stale_calls(smooth_ewm)
print(f"Stale calls of the smoothers: {len(stale_smoothing)}")

# %% [markdown]
# ## One table across both branches
# Expanding back from this run's accuracies reaches either smoother; every row keeps
# its own branch's upstream, so the window and the smoother that made each
# accuracy sit on its row.

# %%
frame = storage.cf({"accuracy": list(results.values())}).expand_back(recursive=True)  # back to the data
print(frame)
table = frame.df(lazy_vars=["tracks", "jumps", "smoothed", "features"])
# A window passed to each smoother is its own variable (window, window_1): the frame never merges
# arguments of different ops. The call columns say which smoother made each row.
table["smoother"] = np.where(table["smooth_rolling"].notna(), "rolling", "ewm")
table["window"] = table["window"].fillna(table["window_1"]).astype(int)
print(table[["smoother", "window", "accuracy"]].sort_values(["smoother", "window"]).to_string(index=False))

# %% [markdown]
# ## The lineage of one result
# Every value knows the calls and the code versions that made it: here the
# best accuracy, back to the arguments passed in by hand.

# %%
best_config = max(results, key=lambda config: storage.unwrap(results[config]))
print(f"Best configuration: {best_config}")
print(storage.lineage(results[best_config]))

# %% [markdown]
# ## What would a helper edit recompute?
# Edit `jump_lengths` (a plain helper: with `deps_path` it is part of the
# version of every op that reaches it). Before running anything, the store
# says which stored calls the new code makes stale, and which stored results
# were computed from them.

# %%
def jump_lengths(frame: pd.DataFrame) -> np.ndarray:  # noqa: F811 - the edited helper
    """Distance between consecutive positions of each track (0 at each track's start)."""
    steps = np.hypot(frame.groupby("track")["x"].diff(), frame.groupby("track")["y"].diff())
    return np.nan_to_num(steps.to_numpy(), nan=0.0)


stale = [call for call in storage.stale_calls() if call.op == "location_jump"]
print(f"Stale after the edit: {len(stale)} call of location_jump")
if stale:  # everything stored downstream of the stale calls: what running again will recompute
    downstream = storage.cf([ref for call in stale for ref in call.outputs.values()]).expand_forward(recursive=True)
    later = {hid for hids in downstream.ops.values() for hid in hids}
    print(f"Stored calls computed from it: {len(later)}")
    print(downstream)

# %% [markdown]
# Running the configurations again recomputes exactly those: the jumps, then
# every step after them, in both branches; the raw tracks are loaded. (Had the
# edit left the jumps' values unchanged, the steps after them would have been
# loaded: a call is identified by the contents of its inputs.)

# %%
before = len(computed)
results = {config: run(*config) for config in configurations}
print(f"After the edit: computed {sum(computed[before:])} calls")

# %% [markdown]
# ## What this run computed

# %%
if sum(computed):
    print(f"This run computed {sum(computed)} calls")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
