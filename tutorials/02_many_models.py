# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Many models: a grid x folds of Gaussian mixtures, in parallel, cached
#
# Cluster the Palmer penguins with
# Gaussian mixture models over a grid of `n_components` x `covariance_type`,
# evaluate each on 5 cross-validation folds, and compare in-sample BIC.
# Fits run on worker processes with `storage.map`; fits that fail are
# recorded (not lost, not retried by accident); every score comes back as a
# tidy DataFrame from a ComputationFrame; a second run computes nothing.
#
# Run it with `python tutorials/02_many_models.py`, from any folder, or open
# it as a notebook (`jupytext --to ipynb tutorials/02_many_models.py`). The
# store goes under `tutorials/output/` (or `MEMOSTORE_TUTORIAL_DIR`) and is
# kept: running the tutorial again computes nothing. The default grid takes
# under a minute on two cores; set `MEMOSTORE_TUTORIAL_FULL=1` for the full
# study (2 to 10 components, and a large grid for BIC), or
# `MEMOSTORE_TUTORIAL_SMALL=1` for a quick check (what the tests run).

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write the plot to a file; no display needed
import numpy as np
import seaborn as sns
from palmerpenguins import load_penguins
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from memostore import Storage, op

FULL = os.environ.get("MEMOSTORE_TUTORIAL_FULL") == "1"
SMALL = os.environ.get("MEMOSTORE_TUTORIAL_SMALL") == "1"  # the tests' size: fewer, quicker fits
# The store goes beside this file (beside the notebook, in Jupyter), or in MEMOSTORE_TUTORIAL_DIR.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "many_models.db"

FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
COMPONENTS = list(range(2, 11)) if FULL else [2, 3] if SMALL else [2, 3, 4]
COVARIANCES = ["full", "tied", "diag", "spherical"]
BIC_COMPONENTS = list(range(2, 400)) if FULL else [2, 3, 4, 400]  # 400 > rows: those fits fail
NUM_FOLDS = 5
N_INIT = 1 if SMALL else 5  # restarts per fit


@op
def load_data():
    return load_penguins().dropna().reset_index(drop=True)


@op(output_names=["train", "test"])
def split_fold(data, fold, num_folds=NUM_FOLDS, random_state=27):
    order = np.random.default_rng(random_state).permutation(len(data))
    test_rows = np.array_split(order, num_folds)[fold]
    is_test = np.isin(np.arange(len(data)), test_rows)
    return data[~is_test].reset_index(drop=True), data[is_test].reset_index(drop=True)


@op
def fit_gmm(train, n_components, covariance_type, n_init):
    # Everything a fit depends on is an argument: a global N_INIT read here would not be part of the call, and a
    # quick run's fits would later be served to the full run.
    gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type, n_init=n_init, random_state=27)
    return gmm.fit(train[FEATURES])


@op
def adjusted_rand(fit, test):
    return adjusted_rand_score(test["species"], fit.predict(test[FEATURES]))


@op
def bic(fit, data):
    return fit.bic(data[FEATURES])


def run_workflow(storage):
    """The whole workflow; returns how many calls were computed and how many loaded.

    Each ``storage.map`` shows a progress bar of the calls it computes, with the
    stored calls it found (hits) alongside.
    """
    with storage:
        data = load_data()
        folds = [split_fold(data, fold) for fold in range(NUM_FOLDS)]
    grid = [{"n_components": k, "covariance_type": c, "n_init": N_INIT} for c in COVARIANCES for k in COMPONENTS]
    fit_items = [{"train": train, **params} for params in grid for train, _ in folds]
    fits = storage.map(fit_gmm, fit_items, executor="processes", n_jobs=2, on_error="record")
    score_items = [{"fit": fit, "test": test} for fit, (_, test) in zip(fits, folds * len(grid), strict=True)
                   if fit is not None]
    scores = storage.map(adjusted_rand, score_items, executor="processes", n_jobs=2)
    bic_grid = [{"train": data, "n_components": k, "covariance_type": c, "n_init": N_INIT}
                for c in COVARIANCES for k in BIC_COMPONENTS]
    full_fits = storage.map(fit_gmm, bic_grid, executor="processes", n_jobs=2, on_error="record")
    bics = storage.map(bic, [{"fit": f, "data": data} for f in full_fits if f is not None],
                       executor="processes", n_jobs=2)
    maps = [fits, scores, full_fits, bics]  # each map's results also count what it computed and found stored
    return sum(m.computed for m in maps), sum(m.hits for m in maps)


# %% [markdown]
# ## Run the grid, then run it again
# The second pass finds every call in the store and computes nothing; so does
# every pass of a later run of this tutorial.

# %%
storage = Storage(db_path=db_path)
start = time.perf_counter()
first_computed, loaded = run_workflow(storage)
print(f"First pass: {first_computed} calls computed, {loaded} loaded, in {time.perf_counter() - start:.1f} s")
start = time.perf_counter()
computed, loaded = run_workflow(storage)
print(f"Second pass: {computed} calls computed, {loaded} loaded, in {time.perf_counter() - start:.1f} s")
print(f"What the last map did: {storage.last_run}")  # after any block or map: computed, hits, failed, timing

# %% [markdown]
# ## Failed fits are recorded, with their errors

# %%
failures = storage.failures(fit_gmm)
print(f"{len(failures)} failed fits, for example:")
print(failures[["n_components", "covariance_type", "error_type"]].head(4).to_string(index=False))

# %% [markdown]
# ## Tidy tables of every fit and score, from the store
# Expanding back from the scores reaches the fits, the folds and the data:
# one row per (hyperparameters, fold).

# %%
cf = storage.cf(adjusted_rand).expand_back(recursive=True)
print(cf)
scores = cf.df(values="objs", lazy_vars=["train", "test", "data"], include_calls=False)
cv_ars = scores[["n_components", "covariance_type", "fold", "var_0"]].rename(columns={"var_0": "cv_ars"})
print(cv_ars.sort_values(["covariance_type", "n_components", "fold"]).head(10).to_string(index=False))
summary = cv_ars.groupby(["covariance_type", "n_components"])["cv_ars"].mean().unstack()
print(summary.round(3))

bic_table = storage.cf(bic).expand_back("fit").df(lazy_vars=["data", "fit"], include_calls=False)
bic_table = bic_table[["n_components", "covariance_type", "var_0"]].rename(columns={"var_0": "bic"})
print(bic_table.sort_values("bic").head(5).to_string(index=False))

# %%
plot = sns.lineplot(data=cv_ars, x="n_components", y="cv_ars", hue="covariance_type", errorbar=None)
plot.figure.savefig(out_dir / "cv_ars.png", dpi=100)
print(f"Plot written to {out_dir / 'cv_ars.png'}")

# %% [markdown]
# ## What this run computed

# %%
if first_computed:
    print(f"This run computed {first_computed} calls")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
