"""Ops called by joblib, concurrent.futures pools and threads inside a block are memoized into its storage."""

import concurrent.futures
import threading

import pytest

from memostore import NotMemoizedWarning, Storage, op


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
        pytest.skip("an in-memory storage cannot be reached from worker processes (see the warning test)")
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
