# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Random forest project: memoize, iterate, query
#
# A small machine-learning project end to end with memostore on a SQLite
# file: run a pipeline, re-run it from the store, grow an op without losing
# its results, then query every stored call declaratively with a
# `ComputationFrame`, and delete calls picked from a DataFrame.
#
# Run it with `python tutorials/01_random_forest.py`, from any folder, or open
# it as a notebook (`jupytext --to ipynb tutorials/01_random_forest.py`). The
# store goes under `tutorials/output/` (or `MEMOSTORE_TUTORIAL_DIR`) and is
# kept: a second run computes nothing. The drawings need Graphviz's `dot`
# program (`apt-get install graphviz`, `brew install graphviz` or
# `conda install graphviz`); without it they are skipped with a note.

# %%
import os
import shutil
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from memostore import GraphvizMissingError, NewArgDefault, Storage, op

# The store goes beside this file (beside the notebook, in Jupyter), or in MEMOSTORE_TUTORIAL_DIR.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "random_forest.db"
COMPUTED = []  # the op bodies that ran in this session


def save_drawing(cf, name):
    """Write the frame's drawing to an SVG file (it needs Graphviz's dot)."""
    try:
        cf.draw(verbose=True, path=str(out_dir / name))
        print(f"Drawing written to {out_dir / name}")
    except GraphvizMissingError as err:
        print(f"No drawing: {err}")


np.random.seed(0)


@op
def generate_dataset(random_seed=42):
    print("Generating dataset...")
    COMPUTED.append("generate_dataset")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=random_seed)
    return X_train, X_test, y_train, y_test


@op
def train_model(X_train, y_train):
    print("Training model...")
    COMPUTED.append("train_model")
    model = RandomForestClassifier(n_estimators=1)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


@op
def eval_model(model, X_test, y_test):
    print("Evaluating model...")
    COMPUTED.append("eval_model")
    return round(model.score(X_test, y_test), 2)


# %% [markdown]
# ## Run the pipeline once, then again from the store

# %%
storage = Storage(db_path=db_path)

with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    model, train_acc = train_model(X_train, y_train)
    test_acc = eval_model(model, X_test, y_test)
    print(f"Train accuracy: {train_acc},\nTest accuracy: {test_acc}")

with storage:  # same code: only pointers to the stored results come back
    X_train, X_test, y_train, y_test = generate_dataset()
    model, train_acc = train_model(X_train, y_train)
    test_acc = eval_model(model, X_test, y_test)
    print(f"Train accuracy: {train_acc},\nTest accuracy: {test_acc}")


# %% [markdown]
# ## Grow `train_model` backward-compatibly
# `NewArgDefault(1)` reproduces the old behaviour at its default, so the call
# with one tree is loaded, and only 10 and 100 trees are trained.

# %%
@op
def train_model(X_train, y_train, n_estimators=NewArgDefault(1)):  # noqa: F811 - the grown op
    print("Training model...")
    COMPUTED.append("train_model")
    model = RandomForestClassifier(n_estimators=n_estimators)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    for n_estimators in [1, 10, 100]:
        print(f"Running with {n_estimators} trees...")
        model, train_acc = train_model(X_train, y_train, n_estimators=n_estimators)
        test_acc = eval_model(model, X_test, y_test)
        print(f"    Train accuracy={train_acc},\n    Test accuracy={test_acc}")

# %% [markdown]
# ## Query the storage with computation frames

# %%
cf = storage.cf(train_model)
print(cf)
cf.rename(vars={"var_0": "model", "var_1": "train_acc"}, inplace=True)
print(cf)
print(cf.df().drop(columns=["X_train", "y_train"]).to_markdown())

# %% [markdown]
# Expand back to where the inputs came from, forward to what used the outputs,
# or all the way:

# %%
print("Expanding back the inputs:")
save_drawing(cf.expand_back(varnames=["X_train", "y_train"]), "expand_back.svg")
print("Expanding forward the outputs:")
save_drawing(cf.expand_forward(varnames=["model", "train_acc"]), "expand_forward.svg")
expanded_cf = cf.expand_all()
print(expanded_cf)
df = expanded_cf.df().drop(columns=["X_train", "y_train", "X_test", "y_test"])
print(df.to_markdown())


# %% [markdown]
# ## High-level operations over heterogeneous experiments
# One more backward-compatible argument, and four more models, left
# unevaluated on purpose.

# %%
@op
def train_model(X_train, y_train, n_estimators=NewArgDefault(1), max_depth=NewArgDefault(None)):  # noqa: F811
    print("Training model...")
    COMPUTED.append("train_model")
    model = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    for n_estimators in [10, 100]:
        for max_depth in [1, 2]:
            model, train_acc = train_model(X_train, y_train, n_estimators=n_estimators, max_depth=max_depth)

cf = storage.cf(train_model).expand_all().rename(vars={"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc"})
# lazy_vars leaves the large arrays unloaded
df = cf.df(lazy_vars=["X_train", "y_train", "X_test", "y_test"], join_how="outer").drop(
    columns=["X_train", "y_train", "X_test", "y_test"])
print(df.to_markdown())

# %% [markdown]
# Missing paths are empty: `<NA>` in a column of ints (`max_depth`), NaN in
# one of floats, None under operations (`eval_model`). Pick models with pandas:

# %%
print(df.query("train_acc > 0.8 and max_depth == 2").model.tolist())

# %% [markdown]
# ## Delete calls picked the same way
# Deleting is for real, so we try it on a copy of the store: the original
# keeps every call, and running this tutorial again still computes nothing.
# `storage.backup` copies a store safely, even while it is open.

# %%
trial_path = out_dir / "random_forest_trial.db"
for leftover in (trial_path, Path(f"{trial_path}-wal"), Path(f"{trial_path}-shm")):  # the last run's copy
    leftover.unlink(missing_ok=True)
shutil.rmtree(f"{trial_path}-blobs", ignore_errors=True)
storage.backup(trial_path)
trial = Storage(db_path=trial_path)

dropped = trial.drop_calls(df.query("train_acc < 0.8").train_model, delete_dependents=True)
print(f"Dropped {len(dropped)} calls.")
cf = trial.cf(train_model).expand_all().rename(vars={"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc"})
df = cf.df(lazy_vars=["X_train", "y_train", "X_test", "y_test"]).drop(
    columns=["X_train", "y_train", "X_test", "y_test"])
print(df.to_markdown())
save_drawing(cf, "random_forest.svg")
print(f"Freed: {trial.cleanup_refs()}")
print(trial)
print(storage)  # the original store still holds every call

# %% [markdown]
# ## What this run computed

# %%
if COMPUTED:
    print(f"This run computed {len(COMPUTED)} calls: {', '.join(COMPUTED)}")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
