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
# The reference tutorial of mandala (seed 002), end to end with memostore on a
# SQLite file: run a pipeline, re-run it from the store, grow an op without
# losing its results, then query every stored call declaratively with a
# `ComputationFrame`, and delete calls picked from a DataFrame.
#
# Run it with `python tutorials/01_random_forest.py`, or open it as a notebook
# with jupytext. `MEMOSTORE_TUTORIAL_DIR` chooses where the store and the
# drawings go.

# %%
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from memostore import NewArgDefault, Storage, op

out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR", Path(__file__).parent / "output"))
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "random_forest.db"
for stale in out_dir.glob("random_forest.db*"):  # start fresh, so the walk-through reads the same each time
    stale.unlink()

np.random.seed(0)


@op
def generate_dataset(random_seed=42):
    print("Generating dataset...")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=random_seed)
    return X_train, X_test, y_train, y_test


@op
def train_model(X_train, y_train):
    print("Training model...")
    model = RandomForestClassifier(n_estimators=1)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


@op
def eval_model(model, X_test, y_test):
    print("Evaluating model...")
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
cf.expand_back(varnames=["X_train", "y_train"]).draw(verbose=True, path=str(out_dir / "expand_back.svg"))
print("Expanding forward the outputs:")
cf.expand_forward(varnames=["model", "train_acc"]).draw(verbose=True, path=str(out_dir / "expand_forward.svg"))
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
# Missing paths are NaN, under variables (`max_depth`) or operations
# (`eval_model`). Pick models with pandas, then delete calls picked the same way:

# %%
print(df.query("train_acc > 0.8 and max_depth == 2").model.tolist())
dropped = storage.drop_calls(df.query("train_acc < 0.8").train_model, delete_dependents=True)
print(f"Dropped {len(dropped)} calls.")
cf = storage.cf(train_model).expand_all().rename(vars={"var_0": "model", "var_1": "train_acc", "var_2": "eval_acc"})
df = cf.df(lazy_vars=["X_train", "y_train", "X_test", "y_test"]).drop(
    columns=["X_train", "y_train", "X_test", "y_test"])
print(df.to_markdown())
cf.draw(verbose=True, path=str(out_dir / "random_forest.svg"))
print(f"Freed: {storage.cleanup_refs()}")
print(storage)
