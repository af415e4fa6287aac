# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Reports: parameterized runs, one HTML report per run, and one comparing them
#
# A small study: fit polynomials of a few degrees to noisy samples of a
# curve, at several noise levels. Each noise level is one *run*, labelled
# and tagged with its parameters (`with storage.run("noise=0.1", tags=...)`).
# The store records each run (when, where, who, what it computed and what it
# found stored), and everything a report needs: the results, their figures
# (an op that returns a matplotlib figure stores its images), and where each
# result came from. The reports are then written *from the store alone*, by
# a reader that has neither the code nor trust in the store's pickles:
# one self-contained HTML file per run, and one comparing the runs.
#
# Run it with `python tutorials/06_reports.py`, from any folder, or open it
# as a notebook (`jupytext --to ipynb tutorials/06_reports.py`). The store
# and the reports go under `tutorials/output/` (or
# `MEMOSTORE_TUTORIAL_DIR`) and are kept: running the tutorial again
# computes nothing, records new runs that found everything stored, and
# writes the reports again from those runs: the same results, each now shown
# as found stored by the new run. `MEMOSTORE_TUTORIAL_SMALL=1` runs a smaller
# study (what the tests run).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are drawn into the store, not on a screen
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memostore import Storage, op

SMALL = os.environ.get("MEMOSTORE_TUTORIAL_SMALL") == "1"
# The store goes beside this file (beside the notebook, in Jupyter), or in MEMOSTORE_TUTORIAL_DIR.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "reports.db"

NOISE_LEVELS = [0.1, 0.5] if SMALL else [0.05, 0.1, 0.3, 0.5]
DEGREES = [1, 3, 9] if SMALL else [1, 2, 3, 5, 9]
POINTS = 60 if SMALL else 400


@op
def sample(points, noise, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, points))
    return pd.DataFrame({"x": x, "y": np.sin(3 * x) + noise * rng.normal(size=points)})


@op(output_names=["train", "test"])
def split(data, test_fraction=0.3, seed=0):
    is_test = np.random.default_rng(seed).random(len(data)) < test_fraction
    return data[~is_test].reset_index(drop=True), data[is_test].reset_index(drop=True)


@op
def fit_polynomial(train, degree):
    return np.polyfit(train["x"], train["y"], degree)  # the coefficients: an array, stored without pickle


@op(output_names=["error"])
def test_error(coefficients, test):
    return float(np.sqrt(np.mean((np.polyval(coefficients, test["x"]) - test["y"]) ** 2)))


@op
def fit_figure(coefficients, train, test):
    figure = Figure(figsize=(4, 2.6))
    axes = figure.subplots()
    axes.scatter(train["x"], train["y"], s=8, label="train")
    axes.scatter(test["x"], test["y"], s=8, label="test")
    grid = np.linspace(-1, 1, 200)
    axes.plot(grid, np.polyval(coefficients, grid), color="black", label=f"degree {len(coefficients) - 1}")
    axes.set_ylim(-2, 2)
    axes.legend(fontsize=7)
    return figure  # stored as its PNG and SVG images: a report or the viewer shows it


# %% [markdown]
# ## One run per noise level
#
# `storage.run(label, tags=...)` is a `with storage:` block that the store
# records as a run with that label and those tags. `storage.last_run` says
# what the block computed and found stored, and its run id.

# %%
storage = Storage(db_path=db_path)
computed = 0
for noise in NOISE_LEVELS:
    with storage.run(f"noise={noise}", tags={"noise": str(noise), "points": str(POINTS)}):
        train, test = split(sample(POINTS, noise))
        for degree in DEGREES:
            coefficients = fit_polynomial(train, degree)
            test_error(coefficients, test)
            fit_figure(coefficients, train, test)
    computed += storage.last_run.computed
    print(f"run {storage.last_run.run_id} (noise={noise}): {storage.last_run}")

# %% [markdown]
# ## What the store knows about its runs
#
# `storage.runs()` is a DataFrame of every recorded run; `storage.cf(run=...)`
# is a frame of one run's calls. (Each time this tutorial runs it records new
# runs: the latest of each label is the one reports pick by label.)

# %%
runs = storage.runs()
latest = runs.drop_duplicates("label", keep="last")
print(latest[["run", "label", "tags", "computed", "hits", "failed", "host"]].to_string(index=False))
first_run = storage.cf(run=latest.iloc[0]["run"])  # a run id, a label, or storage.last_run
print(f"run {latest.iloc[0]['run']}'s calls, by op:", {node: len(calls) for node, calls in first_run.ops.items()})
storage.close()

# %% [markdown]
# ## Reports, from the store alone
#
# A colleague opens the store without our code, and without trusting its
# pickles (`allow_pickle=False`: nothing here was pickled anyway, and nothing
# is executed). One HTML file per run, then one comparing every run: each
# holds the op graph, the results with their figures, and the provenance of
# each result (call id, op version, start, duration, and the run and host
# that computed it). The command line writes the same files:
# `memostore report tutorials/output/reports.db --run noise=0.1 -o report.html`.

# %%
reader = Storage(db_path=db_path, allow_pickle=False)
for noise in NOISE_LEVELS:
    path = reader.report(f"noise={noise}", out_dir / f"report_noise_{noise}.html")
    print(f"wrote {path} ({Path(path).stat().st_size:,} bytes)")
labels = [f"noise={noise}" for noise in NOISE_LEVELS]
path = reader.report(labels, out_dir / "report_comparison.html", title="Every noise level compared")
print(f"wrote {path} ({Path(path).stat().st_size:,} bytes)")

# %% [markdown]
# The comparison as a table, from a frame of every `test_error` call and the
# calls upstream of it: the test error by noise level and degree.

# %%
errors = reader.cf(test_error).expand_back(recursive=True).df(values="objs")
table = errors.pivot_table(index="noise", columns="degree", values="error").round(3)
print(table.to_string())
best = errors.loc[errors.groupby("noise")["error"].idxmin(), ["noise", "degree", "error"]]
print("best degree per noise level:", dict(zip(best["noise"], best["degree"], strict=True)))

# %%
if computed:
    print(f"This run computed {computed} calls")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
