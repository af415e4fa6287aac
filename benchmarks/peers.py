"""One measurement of one engine, run in a fresh interpreter by compare.py.

    python benchmarks/peers.py ENGINE TASK N DIR [memory]     # prints one JSON object

ENGINE is memostore, joblib or mandala (mandala runs from its own venv). Each
TASK does the same job in each engine's own idiom, as its users would write it.
Figures are wall seconds unless their name says otherwise.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _harness import timed  # benchmarks/ is this script's directory, so first on sys.path
from bench_store import COMMIT_EVERY_CALLS, double, grow, inc
from bench_store import disk_bytes as disk_bytes_of_store

ARRAY_ITEMS = 2**27  # float64: 1 GiB
GRID_SEEDS, GRID_PARAMS = 20, 25  # W3: 20 datasets x 25 models, 1,020 calls
MAP_TASKS, MAP_TASK_S = 16, 0.25  # W7
RERUN_ITEMS = 10_000  # W7: a map all of whose items are stored


class Engine:
    """An engine's ``op`` decorator and store, behind the few verbs the workloads use."""

    def __init__(self, name: str, where: str, in_memory: bool = False) -> None:
        self.name = name
        self.where = where
        db_path = None if in_memory else os.path.join(where, "store.db")
        if name == "memostore":
            from memostore import Storage, op
            self.storage: Any = Storage(db_path=db_path)
            self._decorate: Callable[..., Any] = op
        elif name == "mandala":
            from mandala.imports import Storage, op
            # Values over 50 MB need mandala's overflow directory (W5's array).
            self.storage = (Storage(db_path=db_path, overflow_dir=os.path.join(where, "overflow"))
                            if db_path else Storage())
            self._decorate = op
        else:
            from joblib import Memory
            self.storage = None  # joblib has no in-memory store: always a directory
            self._decorate = Memory(os.path.join(where, "joblib"), verbose=0).cache

    def op(self, function: Callable[..., Any]) -> Callable[..., Any]:
        return self._decorate(function)

    def session(self) -> Any:
        """The block calls are memoized in (joblib memoizes without one)."""
        if self.storage is None:
            import contextlib
            return contextlib.nullcontext()
        return self.storage

    def value(self, result: Any) -> Any:
        return result if self.storage is None else self.storage.unwrap(result)

    def frame_table(self, op: Callable[..., Any]) -> int:
        """``cf(op).expand_all().df()``; returns its number of rows."""
        return len(self.storage.cf(op).expand_all().df())


def disk_bytes(where: str) -> int:
    return sum(p.stat().st_size for p in Path(where).rglob("*") if p.is_file())


# --- W1, W2: trivial calls (inc and double are bench_store.py's) -------------------

def calls(engine: Engine, n: int, phase: str) -> dict[str, float]:
    f = engine.op(inc)

    def run() -> None:
        with engine.session():
            for i in range(n):
                f(i)

    if phase == "hit":
        run()
    return {"us_per_call": timed(run) / n * 1e6}


# --- W3: a 3-op pipeline (generate -> train -> evaluate) -------------------------------------

def generate(seed):
    import numpy as np
    return np.random.default_rng(seed).random((200, 5))


def train(X, n):
    return X[:, : n % 5 + 1].mean(axis=0) * (1 + n)


def evaluate(model, X):
    return float((X[:, : len(model)] @ model).mean())


def pipeline(engine: Engine, n: int) -> dict[str, float]:
    gen, fit, score = engine.op(generate), engine.op(train), engine.op(evaluate)

    def run() -> None:
        with engine.session():
            for seed in range(GRID_SEEDS):
                X = gen(seed)
                for param in range(100, 100 + GRID_PARAMS):  # values apart from the seeds
                    score(fit(X, param), X)

    figures = {"pipeline_s": timed(run), "rerun_s": timed(run)}
    if engine.storage is not None:
        rows: list[int] = []
        figures["cf_df_s"] = timed(lambda: rows.append(engine.frame_table(score)))
        figures["rows"] = rows[0]
    return figures


# --- W4, W6: a 2-op chain, committed every 10,000 calls (bench_store.py's) ---------------------

STORED_CALLS_FILE = "stored_calls.txt"  # W4's store grows over several processes: how far it got


def build_chain(engine: Engine, n: int) -> dict[str, float]:
    first, second = engine.op(inc), engine.op(double)
    return {"build_s": timed(lambda: grow(engine.session(), first, second, 0, n))}


def stored_calls(engine: Engine, now: int | None = None) -> int:
    """The calls the growing store holds, as recorded by the last task on it (records ``now`` if given)."""
    path = Path(engine.where) / STORED_CALLS_FILE
    if now is not None:
        path.write_text(str(now))
    return int(path.read_text()) if path.exists() else 0


def grow_chain(engine: Engine, n: int) -> dict[str, float]:
    """The store grown to ``n`` calls; its bytes on disk per stored call."""
    first, second = engine.op(inc), engine.op(double)
    start = stored_calls(engine)
    build_s = timed(lambda: grow(engine.session(), first, second, start, n - start))
    stored_calls(engine, max(n, start))
    counter = (Path(engine.where) / STORED_CALLS_FILE).lstat().st_blocks * 512
    return {"build_s": build_s, "bytes_per_call": (disk_bytes_of_store(Path(engine.where)) - counter) / max(n, start),
            "build_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def more_calls(engine: Engine, n: int) -> dict[str, float]:
    """10,000 more new calls on the store, commit included, after one new chain committed untimed (a process
    past its one-time costs: imports, registering the ops)."""
    first, second = engine.op(inc), engine.op(double)
    start = stored_calls(engine)
    grow(engine.session(), first, second, start, 2)
    seconds = timed(lambda: grow(engine.session(), first, second, start + 2, COMMIT_EVERY_CALLS))
    stored_calls(engine, start + 2 + COMMIT_EVERY_CALLS)
    return {"new_call_us": seconds / COMMIT_EVERY_CALLS * 1e6}


def query_chain(engine: Engine, n: int) -> dict[str, float]:
    """The frame; its one-time import of pandas happens before the clock starts (mandala's import has it)."""
    import pandas  # noqa: F401

    rows: list[int] = []
    seconds = timed(lambda: rows.append(engine.frame_table(engine.op(inc))))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": rows[0], "peak_mb": peak_mb}


def drop_half(engine: Engine, n: int) -> dict[str, float]:
    """Drop half the first op's calls with their dependents: half of the store's calls."""
    table = engine.storage.cf(engine.op(inc)).df()
    chosen = table["inc"].tolist()[: n // 4]
    seconds = timed(lambda: engine.storage.drop_calls(chosen, delete_dependents=True))
    remaining = len(engine.storage.cf(engine.op(inc)).expand_all().df())
    return {"seconds": seconds, "remaining_chains": remaining}


# --- W5: one call on a 1 GiB array ------------------------------------------------------

def passthrough(x):
    return x


def big_array() -> Any:
    import numpy as np
    return np.random.default_rng(0).random(ARRAY_ITEMS)


def store_array(engine: Engine, n: int) -> dict[str, float]:
    array, f = big_array(), engine.op(passthrough)

    def run() -> None:
        with engine.session():
            f(array)

    seconds = timed(run)
    return {"seconds": seconds, "disk_bytes": disk_bytes(engine.where)}


def reload_array(engine: Engine, n: int) -> dict[str, float]:
    """In a fresh process: the same call again, and its result loaded."""
    import numpy as np

    array, f = big_array(), engine.op(passthrough)
    loaded: list[Any] = []

    def run() -> None:
        with engine.session():
            loaded.append(engine.value(f(array)))

    seconds = timed(run)
    assert np.array_equal(loaded[0], array)
    return {"seconds": seconds}


def array_baseline(where: str) -> dict[str, float]:
    """np.save / np.load of the same bytes, each with an xxh3-128 of them."""
    import numpy as np
    import xxhash

    array, path = big_array(), os.path.join(where, "array.npy")
    save_s = timed(lambda: (np.save(path, array), xxhash.xxh3_128(array.data).digest()))
    load_s = timed(lambda: xxhash.xxh3_128(np.load(path).data).digest())

    def durable_save() -> None:  # what a store that survives a power cut must also do
        with open(path + ".synced", "wb") as handle:
            np.save(handle, array)
            handle.flush()
            os.fsync(handle.fileno())
        xxhash.xxh3_128(array.data).digest()

    return {"save_hash_s": save_s, "load_hash_s": load_s, "save_fsync_hash_s": timed(durable_save),
            "disk_bytes": os.path.getsize(path)}


# --- W7: 16 calls of 0.25 s on 2 processes --------------------------------------------------

def nap(i):
    time.sleep(MAP_TASK_S)
    return i


def parallel_map(engine: Engine, n: int) -> dict[str, Any]:
    items = list(range(MAP_TASKS))
    if engine.name == "memostore":
        f = engine.op(nap)
        # A warm pool, as in a session that maps more than once.
        engine.storage.map(f, [{"i": -1}], executor="processes", n_jobs=2, progress=False)
        seconds = timed(lambda: engine.storage.map(f, [{"i": i} for i in items], executor="processes",
                                                   n_jobs=2, progress=False))
        return {"seconds": seconds, "how": "storage.map(executor='processes', n_jobs=2)"}
    if engine.name == "joblib":
        from joblib import Parallel, delayed
        cached = engine.op(nap)
        Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))
        seconds = timed(lambda: Parallel(n_jobs=2)(delayed(cached)(i) for i in items))
        return {"seconds": seconds, "how": "Parallel(n_jobs=2) over Memory.cache"}
    f = engine.op(nap)

    def sequential() -> None:
        with engine.session():
            for i in items:
                f(i)

    return {"seconds": timed(sequential), "how": "no parallel map: a loop in one process"}


def twice(i):
    return 2 * i


def parallel_rerun(engine: Engine, n: int) -> dict[str, Any]:
    """The same map again once all its items are stored (built by that map; the store reopened for memostore)."""
    items = list(range(n or RERUN_ITEMS))
    if engine.name == "memostore":
        from memostore import Storage
        f = engine.op(twice)

        def rerun() -> Any:
            return engine.storage.map(f, [{"i": i} for i in items], executor="processes", n_jobs=2,
                                      chunksize=100, progress=False)

        build_s = timed(rerun)
        engine.storage.close()
        engine.storage = Storage(db_path=os.path.join(engine.where, "store.db"))
        cpu = time.process_time()  # all of it in this process: no worker starts
        seconds = timed(rerun)
        return {"seconds": seconds, "cpu_s": time.process_time() - cpu, "build_s": build_s,
                "how": "storage.map(executor='processes', n_jobs=2) of stored items, store reopened"}
    if engine.name == "joblib":
        from joblib import Parallel, delayed
        cached = engine.op(twice)

        def again() -> Any:
            return Parallel(n_jobs=2)(delayed(cached)(i) for i in items)

        build_s = timed(again)
        return {"seconds": timed(again), "build_s": build_s, "how": "Parallel(n_jobs=2) over Memory.cache, all cached"}
    f = engine.op(twice)

    def sequential() -> None:
        with engine.session():
            for i in items:
                f(i)

    build_s = timed(sequential)
    return {"seconds": timed(sequential), "build_s": build_s, "how": "no parallel map: a loop in one process"}


# --- W8: single lookups on an open store -------------------------------------------------

SINGLE_LOOKUPS = 1_000
LOOKUP_REPEATS = 20  # passes at most...
LOOKUP_MIN_REPEATS = 5  # ...and at least, until the passes took LOOKUP_BUDGET_S
LOOKUP_BUDGET_S = 1.0


def per_lookup_us(lookup: Callable[[Any], Any], items: list[Any]) -> float:
    """Microseconds per lookup, as ``timeit.repeat`` measures: the collector off (one full collection of
    everything the store built, tens of ms, would otherwise land on whichever lookup runs then), and the
    best of several passes over the items. On this virtual machine a process runs, now and then, up to
    1.7 times slower for a second or so (a pure-Python loop: 22 or 40 ms, alternately); five passes of
    microsecond lookups (0.1 s) often fell entirely in such a phase. So passes go on until they took
    LOOKUP_BUDGET_S (at least LOOKUP_MIN_REPEATS, at most LOOKUP_REPEATS): twenty for fast lookups, five for
    an engine whose pass alone takes a second. The fastest pass is the code's own cost."""
    import gc

    lookup(items[0])
    gc.collect()
    gc.disable()
    try:
        passes: list[float] = []
        while len(passes) < LOOKUP_MIN_REPEATS or (len(passes) < LOOKUP_REPEATS and sum(passes) < LOOKUP_BUDGET_S):
            passes.append(timed(lambda: [lookup(item) for item in items]))
        return min(passes) / len(items) * 1e6
    finally:
        gc.enable()


def single_lookups(engine: Engine, n: int) -> dict[str, float]:
    """One small stored value loaded at a time (joblib's equivalent: one cached result loaded by a hit)."""
    f = engine.op(inc)
    with engine.session():
        results = [f(i) for i in range(n)]
    picks = list(range(0, n, max(1, n // SINGLE_LOOKUPS)))
    storage = engine.storage
    if engine.name == "joblib":
        return {"unwrap_us": per_lookup_us(f, picks)}
    if engine.name == "mandala":
        with storage:
            unwrap_us = per_lookup_us(lambda i: storage.unwrap(f(i)), picks)
        hids = [results[i].hid for i in picks]
        lazy = [storage.load_ref(hid) for hid in hids]
        inputs = [call.inputs["x"] for call in map(storage.get_ref_creator, lazy)]
        return {"unwrap_us": unwrap_us,
                "load_ref_us": per_lookup_us(storage.load_ref, hids),
                "get_ref_creator_us": per_lookup_us(storage.get_ref_creator, lazy),
                "get_consumers_us": per_lookup_us(lambda ref: storage.get_consumers([ref.hid]), inputs)}
    hids = [results[i].hid for i in picks]
    lazy = [storage.load_ref(hid) for hid in hids]
    inputs = [call.inputs["x"] for call in map(storage.get_ref_creator, lazy)]
    return {"unwrap_us": per_lookup_us(lambda ref: storage.unwrap(ref.detached()), lazy),
            "load_ref_us": per_lookup_us(storage.load_ref, hids),
            "get_ref_creator_us": per_lookup_us(storage.get_ref_creator, lazy),
            "get_consumers_us": per_lookup_us(storage.get_consumers, inputs)}


TASKS: dict[str, Callable[[Engine, int], dict[str, Any]]] = {
    "w1_cold": lambda e, n: calls(e, n, "cold"),
    "w2_hit": lambda e, n: calls(e, n, "hit"),
    "w2_reopen": lambda e, n: calls(e, n, "reopen"),
    "w3_pipeline": pipeline,
    "w4_build": build_chain,
    "w4_query": query_chain,
    "w4_grow": grow_chain,
    "w4_more": more_calls,
    "w5_store": store_array,
    "w5_reload": reload_array,
    "w6_drop": drop_half,
    "w7_map": parallel_map,
    "w7_rerun": parallel_rerun,
    "w8_single": single_lookups,
}


def main() -> None:
    engine_name, task, n, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if task == "w5_baseline":
        figures = array_baseline(where)
    else:
        figures = TASKS[task](Engine(engine_name, where, in_memory=sys.argv[5:] == ["memory"]), n)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
