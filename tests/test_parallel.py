"""storage.map: batched lookups, executors, errors, and interrupted runs."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from memostore import MapOptionError, OpDefinitionError, OpFailedError, Storage, UnknownOpError, op

from helpers import REPO_ROOT, committed_calls

RUNS: list[int] = []


@op
def square(x):
    RUNS.append(x)
    return x * x


@op
def where_run(x):
    return x, os.getpid()


@op
def flaky(x):
    if x % 3 == 0:
        raise ValueError(f"no multiples of three: {x}")
    return x + 1


@op
def inner_double(x):
    return 2 * x


@op
def outer(x):
    return inner_double(x) + 1


@pytest.fixture(autouse=True)
def clear_runs():
    RUNS.clear()


def test_map_returns_refs_in_item_order_and_computes_only_misses(storage):
    with storage:
        square(2)
    RUNS.clear()
    refs = storage.map(square, [{"x": x} for x in [3, 2, 1, 3]], progress=False)
    assert not refs[1].in_memory and refs[0].in_memory
    assert storage.unwrap(refs) == [9, 4, 1, 9]
    assert sorted(RUNS) == [1, 3]  # 2 was stored, 3 is asked twice and run once


def test_a_rerun_is_one_batched_lookup(storage, monkeypatch):
    storage.map(square, [{"x": x} for x in range(300)], progress=False)
    storage._buffer._cache.clear()  # as in a fresh process
    lookups, single = [], []
    original = storage._store.find_outputs_many
    monkeypatch.setattr(storage._store, "find_outputs_many", lambda *a: lookups.append(1) or original(*a))
    monkeypatch.setattr(storage._store, "find_outputs", lambda *a: single.append(1))
    RUNS.clear()
    again = storage.map(square, [{"x": x} for x in range(300)], progress=False)
    assert RUNS == [] and lookups == [1] and single == []
    assert storage.unwrap(again[299]) == 299 * 299


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_executors_compute_the_same_results(db_path, executor):
    storage = Storage(db_path=db_path)
    refs = storage.map(where_run, [{"x": x} for x in range(6)], executor=executor, n_jobs=2, progress=False)
    values = storage.unwrap(refs)
    assert [v[0] for v in values] == list(range(6))
    pids = {v[1] for v in values}
    if executor == "processes":
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}


def test_any_concurrent_futures_executor(db_path):
    storage = Storage(db_path=db_path)
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        refs = storage.map(square, [{"x": x} for x in range(5)], executor=pool, progress=False)
    assert storage.unwrap(refs) == [0, 1, 4, 9, 16]


class CountingPool(concurrent.futures.ProcessPoolExecutor):
    """A real process pool that counts the tasks it is given."""

    submitted = 0

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.submitted += 1
        return super().submit(*args, **kwargs)


def test_chunksize_sends_fewer_tasks_to_a_process_pool(db_path):
    storage = Storage(db_path=db_path)
    with CountingPool(max_workers=2) as pool:
        refs = storage.map(where_run, [{"x": x} for x in range(20)], executor=pool, chunksize=6, progress=False)
    assert pool.submitted == 4
    assert [x for x, _ in storage.unwrap(refs)] == list(range(20))
    assert refs.computed == 20


def test_a_failure_in_a_chunk_of_processes_is_that_call_only(db_path):
    storage = Storage(db_path=db_path)
    refs = storage.map(flaky, [{"x": x} for x in range(1, 9)], executor="processes", n_jobs=2, chunksize=4,
                       on_error="record", progress=False)
    assert (refs.computed, refs.failed) == (6, 2)
    assert [ref is None for ref in refs] == [x % 3 == 0 for x in range(1, 9)]
    assert storage.unwrap(refs[3]) == 5


def test_nested_ops_in_workers_are_memoized_into_the_store(db_path):
    storage = Storage(db_path=db_path)
    storage.map(outer, [{"x": x} for x in range(4)], executor="processes", n_jobs=2, progress=False)
    assert len(storage.cf(inner_double).ops["inner_double"]) == 4
    with storage:
        assert not inner_double(3).in_memory


def test_on_error_raise_commits_what_finished(db_path):
    storage = Storage(db_path=db_path)
    with pytest.raises(ValueError, match="no multiples of three: 3"):
        storage.map(flaky, [{"x": x} for x in [1, 2, 3, 4]], progress=False)
    assert len(storage.cf(flaky).ops["flaky"]) == 2


def test_on_error_skip_leaves_none(storage):
    refs = storage.map(flaky, [{"x": x} for x in range(1, 7)], on_error="skip", progress=False)
    assert [r is None for r in refs] == [False, False, True, False, False, True]
    assert storage.failures(flaky).empty


def test_on_error_record_stores_failures_and_does_not_retry(storage):
    refs = storage.map(flaky, [{"x": x} for x in range(1, 7)], on_error="record", progress=False)
    assert [r is None for r in refs] == [False, False, True, False, False, True]
    failures = storage.failures(flaky)
    assert sorted(failures["error_message"]) == ["no multiples of three: 3", "no multiples of three: 6"]
    assert set(failures["error_type"]) == {"builtins.ValueError"}
    assert "Traceback" in failures["traceback"].iloc[0]
    table = storage.cf(flaky).df()
    assert sorted(table["flaky.status"]) == ["failed", "failed", "ok", "ok", "ok", "ok"]
    assert table[table["flaky.status"] == "failed"]["var_0"].isna().all()
    again = storage.map(flaky, [{"x": 3}], on_error="record", progress=False)
    assert again == [None] and len(storage.failures(flaky)) == 2


def test_retry_failed_replaces_the_failure(db_path):
    storage = Storage(db_path=db_path)
    storage.map(flaky, [{"x": 3}], on_error="record", progress=False)

    def fixed(x):
        return x + 1

    fixed.__qualname__ = flaky.qualname  # the same function with its bug fixed, as after editing the module
    fixed = op(name="flaky", version=flaky.version)(fixed)
    refs = storage.map(fixed, [{"x": 3}], on_error="record", retry_failed=True, progress=False)
    assert storage.unwrap(refs) == [4]
    assert storage.failures(flaky).empty
    assert Storage(db_path=db_path).cf(flaky).df()["var_0"].tolist() == [4]


def test_errors_from_processes_keep_their_type(db_path):
    storage = Storage(db_path=db_path)
    with pytest.raises(ValueError, match="multiples"):
        storage.map(flaky, [{"x": 3}], executor="processes", progress=False)


def test_unpicklable_errors_become_op_failed_errors(db_path):
    class Local(Exception):
        def __reduce__(self):
            raise TypeError("not picklable")

    @op
    def broken(x):
        raise Local("local")

    storage = Storage(db_path=db_path)
    with pytest.raises(OpFailedError, match="broken.*Local"):
        storage.map(broken, [{"x": 1}], executor="processes", progress=False)


def test_items_must_be_keyword_dicts(storage):
    with pytest.raises(MapOptionError, match="op 'square'.*items\\[1\\].*dict"):
        storage.map(square, [{"x": 1}, 5], progress=False)
    with pytest.raises(MapOptionError, match="items\\[0\\]: square\\(\\) got an unexpected keyword argument 'y'"):
        storage.map(square, [{"y": 1}], progress=False)
    with pytest.raises(MapOptionError, match="on_error"):
        storage.map(square, [], on_error="ignore", progress=False)
    with pytest.raises(MapOptionError, match="executor must be"):
        storage.map(square, [{"x": 1}], executor="gpu", progress=False)


def test_items_that_are_no_list_of_calls_are_named(storage):
    with pytest.raises(MapOptionError, match=r"storage.map\(op 'square'\): items must be a list .*got int 5"):
        storage.map(square, 5, progress=False)
    with pytest.raises(MapOptionError, match=r"got dict \{'x': 1\}.*wrap the dict in a list"):
        storage.map(square, {"x": 1}, progress=False)


def test_map_takes_the_name_of_an_op_defined_here(storage):
    @op(name="cube_for_map_by_name")  # a name no other test module defines
    def cube(x):
        return x ** 3

    assert storage.unwrap(storage.map("cube_for_map_by_name", [{"x": 3}], progress=False)) == [27]
    assert storage.calls_of(cube)[0].op == "cube_for_map_by_name"
    with pytest.raises(UnknownOpError, match=r"storage.map\('no_such_op'\): .*nor is it defined in this process"):
        storage.map("no_such_op", [{"x": 3}], progress=False)
    with pytest.raises(OpDefinitionError, match="storage.map takes an op or its name, got builtin_function"):
        storage.map(len, [{"x": 3}], progress=False)


def test_parameter_grid_items(storage):
    sklearn = pytest.importorskip("sklearn.model_selection")

    @op
    def area(width, height):
        return width * height

    grid = sklearn.ParameterGrid({"width": [1, 2], "height": [3, 4]})
    assert sorted(storage.unwrap(storage.map(area, grid, progress=False))) == [3, 4, 6, 8]


def test_progress_bar_counts_hits(storage, capsys):
    storage.map(square, [{"x": 1}], progress=False)
    storage.map(square, [{"x": 1}, {"x": 2}], progress=True)
    err = capsys.readouterr().err
    assert "square" in err and "hits=1" in err


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from memostore import Storage, op

    @op
    def nap(x):
        time.sleep(0.2)
        return x

    storage = Storage(db_path=sys.argv[1])
    storage.map(nap, [{"x": x} for x in range(100)], executor="processes", n_jobs=2, progress=False)
""")


def test_a_killed_run_keeps_every_finished_call(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    db_path = tmp_path / "killed.db"
    process = subprocess.Popen([sys.executable, str(script), str(db_path)], env={"PYTHONPATH": str(REPO_ROOT)},
                               start_new_session=True)
    deadline = time.monotonic() + 120  # kill it once some calls are committed, however loaded the machine
    while time.monotonic() < deadline and not committed_calls(db_path):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored = Storage(db_path=db_path)
    table = stored.cf("nap").df()
    assert 0 < len(table) < 100
    assert sorted(table["var_0"]) == sorted(table["x"])


def test_dask_cluster_against_a_postgres_store(postgres_url):
    distributed = pytest.importorskip("distributed", reason="pip install -e .[dask]")
    storage = Storage(db_url=postgres_url)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        refs = storage.map(outer, [{"x": x} for x in range(8)], executor=client, progress=False)
        assert storage.unwrap(refs) == [2 * x + 1 for x in range(8)]
        again = storage.map(outer, [{"x": x} for x in range(10)], executor=client, progress=False)
    assert [r.in_memory for r in again] == [False] * 8 + [True] * 2
    fresh = Storage(db_url=postgres_url)
    assert len(fresh.cf(inner_double).ops["inner_double"]) == 10  # memoized by the workers
    assert len(fresh.cf(outer).ops["outer"]) == 10


def square_in_a_worker(storage, x):
    """What user code run by joblib or concurrent.futures does: open the block in the worker."""
    with storage:
        return storage.unwrap(square(x)), os.getpid()


def test_user_managed_parallelism_with_joblib(db_path):
    joblib = pytest.importorskip("joblib")
    storage = Storage(db_path=db_path)
    results = joblib.Parallel(n_jobs=2)(joblib.delayed(square_in_a_worker)(storage, x) for x in range(10))
    assert [value for value, _ in results] == [x * x for x in range(10)]
    assert os.getpid() not in {pid for _, pid in results}
    assert len(storage.cf(square).ops["square"]) == 10
    with storage:
        assert not square(7).in_memory


def test_user_managed_parallelism_with_concurrent_futures(postgres_url):
    storage = Storage(db_url=postgres_url)
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(square_in_a_worker, [storage] * 6, range(6)))
    assert [value for value, _ in results] == [x * x for x in range(6)]
    assert len(Storage(db_url=postgres_url).cf(square).ops["square"]) == 6


def test_nested_ops_in_threads_are_memoized(storage):
    refs = storage.map(outer, [{"x": x} for x in range(40)], executor="threads", n_jobs=8, progress=False)
    assert storage.unwrap(refs) == [2 * x + 1 for x in range(40)]
    assert len(storage.cf(inner_double).ops["inner_double"]) == 40
