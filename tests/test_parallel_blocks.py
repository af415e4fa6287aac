"""Ops called by joblib, concurrent.futures pools and threads inside a block are memoized into its storage."""

import concurrent.futures
import os
import subprocess
import sys
import threading

import pytest

from memostore import NotMemoizedWarning, Storage, op

from helpers import REPO_ROOT


@op
def cube(x):
    return x ** 3


def stored_cubes(storage):
    table = Storage.from_config(storage.config).cf(cube).df() if storage.config.db_path or storage.config.db_url \
        else storage.cf(cube).df()
    return sorted(table["var_0"])


def test_a_thread_pool_inside_a_block_stores_its_calls(storage):
    with storage, concurrent.futures.ThreadPoolExecutor(2) as pool:
        refs = list(pool.map(cube, range(4)))
    assert storage.unwrap(refs) == [0, 1, 8, 27]
    assert stored_cubes(storage) == [0, 1, 8, 27]
    assert storage.last_run.computed == 4


def test_a_plain_thread_inside_a_block_stores_its_calls(storage):
    results = []
    with storage:
        worker = threading.Thread(target=lambda: results.append(cube(5)))
        worker.start()
        worker.join()
    assert storage.unwrap(results) == [125] and stored_cubes(storage) == [125]


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_joblib_inside_a_block_stores_its_calls(storage, backend):
    joblib = pytest.importorskip("joblib")
    if backend == "loky" and storage.config.db_path is None and storage.config.db_url is None:
        # An in-memory storage cannot be reached from worker processes: the calls run, and a warning says so.
        with storage, pytest.warns(NotMemoizedWarning, match="storage.map"):
            values = joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(cube)(x) for x in range(3))
        assert values == [0, 1, 8]
        return
    with storage:
        refs = joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(cube)(x) for x in range(6))
    assert storage.unwrap(refs) == [x ** 3 for x in range(6)]
    assert stored_cubes(storage) == [x ** 3 for x in range(6)]
    with storage:
        again = joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(cube)(x) for x in range(6))
    assert not any(ref.in_memory for ref in again)  # all hits the second time


def test_a_process_pool_inside_a_block_stores_its_calls(db_path):
    storage = Storage(db_path=db_path)
    with storage, concurrent.futures.ProcessPoolExecutor(2) as pool:
        refs = list(pool.map(cube, [2, 3]))
    assert storage.unwrap(refs) == [8, 27] and stored_cubes(storage) == [8, 27]


def test_worker_processes_of_an_in_memory_storage_warn_and_point_to_map():
    joblib = pytest.importorskip("joblib")
    storage = Storage()
    with storage, pytest.warns(NotMemoizedWarning, match="'cube'.*in-memory.*storage.map"):
        values = joblib.Parallel(n_jobs=2)(joblib.delayed(cube)(x) for x in range(2))
    assert values == [0, 1] and storage.cf(cube).df().empty


def test_outside_any_block_a_thread_runs_the_plain_function():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        assert list(pool.map(cube, [2])) == [8]


SCRIPT = '''
import concurrent.futures, json, os, sys
from joblib import Parallel, delayed
from memostore import Storage, op

K = 2


def helper(x):
    return x * K


@op
def scaled(x):
    os.write(1, f"computing {x}\\n".encode())  # one write: two workers' lines must not interleave
    return helper(x)


if __name__ == "__main__":
    storage = Storage(db_path=sys.argv[1], deps_path="__main__")
    with storage:
        scaled(1)
    with storage:
        Parallel(n_jobs=2)(delayed(scaled)(i) for i in range(3))
    with storage, concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(scaled, range(5)))
    print(json.dumps(list(storage.versions(scaled)["calls"])))
'''


def test_ops_of_a_script_in_worker_processes_keep_the_scripts_version(tmp_path):
    # A worker cannot read the script's helpers: it must not hash their bytecode into another version
    # (and recompute what the script stored); a plain process pool must be able to send a script's op.
    script = tmp_path / "grid.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "runs.db")], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(line for line in lines if line.startswith("computing")) == [f"computing {i}" for i in range(5)]
    assert lines[-1] == "[5]"  # one version, each call stored once
