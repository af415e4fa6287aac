# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A model tournament: model families x a grid x 5 folds, in parallel, re-runnable
#
# Several scikit-learn model families compete on one dataset: each family
# over its own grid of hyperparameters, each grid point scored on 5
# cross-validation folds. Every fit is a stored call, fanned out over worker
# processes with `storage.map`. A leaderboard comes from a frame of the
# stored scores, the winner is refit on all training data and scored once
# on held-out data. Adding a grid point later computes only that point's
# folds; a second run computes nothing.
#
# Run it with `python tutorials/04_model_tournament.py`, from any folder, or
# open it as a notebook (`jupytext --to ipynb tutorials/04_model_tournament.py`).
# The store goes under `tutorials/output/` (or `MEMOSTORE_TUTORIAL_DIR`) and is
# kept. `MEMOSTORE_TUTORIAL_SMALL=1` runs a smaller grid (what the tests run).

# %%
import os
import time
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from memostore import Storage, op

SMALL = os.environ.get("MEMOSTORE_TUTORIAL_SMALL") == "1"
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "model_tournament.db"

NUM_FOLDS = 5
# Each family and its grid: the tournament's contestants.
GRIDS = {
    "logistic": [{"C": c} for c in ([0.1, 1.0] if SMALL else [0.01, 0.1, 1.0, 10.0])],
    "forest": [{"n_estimators": n, "max_depth": d}
               for n in ([20] if SMALL else [50, 200]) for d in ([3, None] if SMALL else [3, 6, None])],
    "boosting": [{"learning_rate": r, "n_estimators": 30 if SMALL else 100}
                 for r in ([0.1] if SMALL else [0.03, 0.1, 0.3])],
}


def make_model(family, params):
    """A fresh, unfitted model of one family (plain code: part of the versions of the ops that call it)."""
    if family == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, **params))
    if family == "forest":
        return RandomForestClassifier(random_state=0, **params)
    if family == "boosting":
        return GradientBoostingClassifier(random_state=0, **params)
    raise ValueError(f"unknown model family {family!r}")


# %% [markdown]
# ## The ops
# Data and folds are computed once; each (family, grid point, fold) is one
# `fold_score` call. Parameters are passed as a dict, which is hashed by
# content, so the same grid point is the same call in every run.

# %%
@op(output_names=["X_train", "X_holdout", "y_train", "y_holdout"])
def load_data(holdout_fraction=0.2, seed=0):
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=holdout_fraction, random_state=seed, stratify=y)


@op
def fold_score(X, y, family, params, fold, num_folds=NUM_FOLDS):
    train_rows, test_rows = list(StratifiedKFold(num_folds, shuffle=True, random_state=0).split(X, y))[fold]
    model = make_model(family, params).fit(X[train_rows], y[train_rows])
    return roc_auc_score(y[test_rows], model.predict_proba(X[test_rows])[:, 1])


@op
def refit(X, y, family, params):
    return make_model(family, params).fit(X, y)


@op
def holdout_score(model, X, y):
    return roc_auc_score(y, model.predict_proba(X)[:, 1])


def tournament(storage, grids):
    """Score every grid point of every family on every fold, on 2 worker processes.

    Returns the map's Refs, which also count the folds it ``.computed`` and the ``.hits`` it loaded.
    """
    with storage:
        X_train, X_holdout, y_train, y_holdout = load_data()
    computed.append(storage.last_run.computed)
    items = [{"X": X_train, "y": y_train, "family": family, "params": params, "fold": fold}
             for family, points in grids.items() for params in points for fold in range(NUM_FOLDS)]
    return storage.map(fold_score, items, executor="processes", n_jobs=2)


# %% [markdown]
# ## Run the tournament
# The first run fits every (family, grid point, fold); a later run of this
# tutorial finds them all in the store.

# %%
storage = Storage(db_path=db_path)
computed = []  # what each block and map computed: storage.last_run says it after each
start = time.perf_counter()
scores = tournament(storage, GRIDS)
computed.append(scores.computed)
print(f"Tournament: {scores.computed} folds computed, {scores.hits} loaded, "
      f"in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## The leaderboard, from the store
# A frame of this tournament's scores, expanded back to the `fold_score` calls
# that made them, gives one row per fold with its family and parameters;
# averaging over folds ranks the grid points. Nothing is recomputed: the
# table comes from a query.

# %%
folds = storage.cf({"auc": list(scores)}).expand_back().df(lazy_vars=["X", "y"], include_calls=False)
folds["grid_point"] = folds["params"].map(lambda params: ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
leaderboard = (folds.groupby(["family", "grid_point"])["auc"].agg(["mean", "std", "count"])
               .sort_values("mean", ascending=False).reset_index())
print(leaderboard.round(4).to_string(index=False))

# %% [markdown]
# ## The winner, refit and scored on held-out data

# %%
best = folds.groupby(["family", "grid_point"])["auc"].mean().idxmax()
winner = folds[(folds["family"] == best[0]) & (folds["grid_point"] == best[1])].iloc[0]
with storage:
    X_train, X_holdout, y_train, y_holdout = load_data()
    model = refit(X_train, y_train, winner["family"], winner["params"])
    final = holdout_score(model, X_holdout, y_holdout)
computed.append(storage.last_run.computed)
print(f"Winner: {winner['family']} ({winner['grid_point']}), held-out AUC {storage.unwrap(final):.4f}")

# %% [markdown]
# ## A new contestant computes only its own folds
# Add a grid point to one family and run the tournament again: only the new
# point's folds are fitted; every other fold is loaded from the store.

# %%
bigger = {**GRIDS, "logistic": GRIDS["logistic"] + [{"C": 100.0}]}
grown = tournament(storage, bigger)
print(f"With one more grid point: {grown.computed} folds computed, {grown.hits} loaded")
computed.append(grown.computed)

# %% [markdown]
# ## What this run computed

# %%
if sum(computed):
    print(f"This run computed {sum(computed)} calls")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
