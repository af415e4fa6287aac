# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # memostore quickstart
#
# Three `@op` functions make a small random-forest pipeline. Inside
# `with storage:` every call is stored in a SQLite file; running the same
# code again loads results instead of recomputing them, also from a new
# process days later. Each op prints a line when its body runs, so you can
# see what was computed and what was loaded.
#
# Run it with `python tutorials/00_quickstart.py`, from any folder, or open
# it as a notebook (`jupytext --to ipynb tutorials/00_quickstart.py`). The
# store is a file under `tutorials/output/` (`MEMOSTORE_TUTORIAL_DIR` chooses
# another folder) and it is kept: run the tutorial a second time and nothing
# is computed, every result is loaded from the store. Delete
# `tutorials/output/` to start over.

# %%
import os
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from memostore import NewArgDefault, Storage, op

# The store goes beside this file (beside the notebook, in Jupyter), or in MEMOSTORE_TUTORIAL_DIR.
here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
out_dir = Path(os.environ.get("MEMOSTORE_TUTORIAL_DIR") or here / "output")
out_dir.mkdir(parents=True, exist_ok=True)
db_path = out_dir / "quickstart.db"
COMPUTED = []  # the op bodies that ran in this session


@op
def generate_dataset(random_seed=42):
    print("    computing generate_dataset...")
    COMPUTED.append("generate_dataset")
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=random_seed)
    return X_train, X_test, y_train, y_test


@op
def train_model(X_train, y_train):
    print("    computing train_model...")
    COMPUTED.append("train_model")
    model = RandomForestClassifier(n_estimators=1, random_state=0)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


@op
def eval_model(model, X_test, y_test):
    print("    computing eval_model...")
    COMPUTED.append("eval_model")
    return round(model.score(X_test, y_test), 2)


# %% [markdown]
# ## Run the pipeline once
# Every op call returns a `Ref`: the value plus the ids memostore needs to
# remember where it came from. Fresh results are in memory; on a later run
# of this tutorial they come from the store, as in the next step.

# %%
storage = Storage(db_path=db_path)
print(storage)  # empty the first time; on later runs it holds what they stored

print("The pipeline:")
with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    model, train_acc = train_model(X_train, y_train)
    test_acc = eval_model(model, X_test, y_test)
    print(f"    train accuracy: {train_acc}\n    test accuracy: {test_acc}")

# %% [markdown]
# ## Run it again: nothing is computed
# The storage recognizes each call step by step and hands back lazy refs to
# the stored results, without loading them.

# %%
print("The same code again:")
with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    model, train_acc = train_model(X_train, y_train)
    test_acc = eval_model(model, X_test, y_test)
    print(f"    train accuracy: {train_acc}\n    test accuracy: {test_acc}")
print(f"    unwrapped: train={storage.unwrap(train_acc)}, test={storage.unwrap(test_acc)}")

# %% [markdown]
# ## Grow an op without losing its results
# A new parameter whose default is wrapped in `NewArgDefault(x)` leaves the
# op's version unchanged when `x` reproduces the old behaviour: the call with
# one tree is loaded, the others are computed.


# %%
@op
def train_model(X_train, y_train, n_estimators=NewArgDefault(1)):  # noqa: F811 - the grown op
    print("    computing train_model...")
    COMPUTED.append("train_model")
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=0)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    for n_estimators in [1, 10, 100]:
        print(f"Running with {n_estimators} trees:")
        model, train_acc = train_model(X_train, y_train, n_estimators=n_estimators)
        test_acc = eval_model(model, X_test, y_test)
        print(f"    train accuracy: {train_acc}\n    test accuracy: {test_acc}")

# %% [markdown]
# ## Reopen the store
# A new `Storage` on the same file (in this process or another one) finds
# every stored call.

# %%
reopened = Storage(db_path=db_path)
print("Reopened:", reopened)
with reopened:
    X_train, X_test, y_train, y_test = generate_dataset()
    model, train_acc = train_model(X_train, y_train, n_estimators=100)
    print(f"    100 trees, loaded from disk: test accuracy {reopened.unwrap(eval_model(model, X_test, y_test))}")
print(reopened.versions(train_model)[["version", "calls", "is_current"]].to_string(index=False))

# %% [markdown]
# ## Look around, in a notebook
# Shown on its own as the last line of a notebook cell, a storage, a frame,
# a call or a ref displays as a table; a frame also as its drawing (with
# Graphviz). In a script this cell shows nothing.

# %%
reopened.cf(train_model).expand_all()

# %% [markdown]
# ## What this run computed
# The first time, every call above ran once. Run the tutorial again and
# nothing runs: the store kept every result, also across processes.

# %%
if COMPUTED:
    print(f"This run computed {len(COMPUTED)} calls: {', '.join(COMPUTED)}")
else:
    print("This run computed nothing: every result was loaded from the store of an earlier run")
