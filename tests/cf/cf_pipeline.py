"""A small pipeline shaped like seed 002, with plain numbers for speed.

generate -> train (grown later with NewArgDefault) -> evaluate, plus a
branch (two ops read one value), a merge (an op with two op-made inputs)
and a loop (inc applied to its own output).
"""

from __future__ import annotations

from memostore import NewArgDefault, Storage, op


@op
def generate(seed=42):
    return seed, seed + 1, seed + 2, seed + 3


@op
def train(x_train, y_train):
    return {"weights": x_train + y_train, "depth": 0}, round((x_train % 10 + 0) / 10, 2)


def grown_train():
    """``train`` with a new parameter whose default reproduces the old code."""

    def train(x_train, y_train, depth=NewArgDefault(0)):
        return {"weights": x_train + y_train, "depth": depth}, round((x_train % 10 + depth) / 10, 2)

    train.__qualname__ = "train"  # the module's train, edited: one op, not a second function
    return op(train)


@op
def evaluate(model, x_test):
    return round(model["weights"] / (x_test + 1), 3)


@op
def summarize(a, b):
    return a + b


@op
def inc(x):
    return x + 1


def run_seed_like(storage: Storage) -> None:
    """Three trainings, two evaluated, as in seed 002's first half."""
    with storage:
        for seed in (1, 2, 3):
            x_train, x_test, y_train, _ = generate(seed)
            model, acc = train(x_train, y_train)
            if seed != 3:
                evaluate(model, x_test)


def run_loop(storage: Storage, steps: int = 10):
    with storage:
        x = inc(0)
        for _ in range(steps - 1):
            x = inc(x)
    return x
