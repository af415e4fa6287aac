"""Call modes: storage.noop() runs ops as plain functions and stores nothing;
storage.allow_new_calls(False) loads stored calls and refuses to run new ones."""

import concurrent.futures
import pickle
import threading

import pytest

from memostore import (
    MemostoreError,
    NewCallNotAllowedError,
    NotStoredError,
    Storage,
    StorageOptionError,
    op,
)

RUNS: list[int] = []


@op
def mode_inc(x):
    RUNS.append(x)
    return x + 1


@op
def mode_add(x, y):
    return x + y


@op
def mode_inc_twice(x):
    return mode_inc(mode_inc(x))


def stored_calls(storage):
    storage.commit()
    return storage._store.counts()["calls"]


@pytest.fixture(autouse=True)
def _clear_runs():
    RUNS.clear()


# --- noop ---------------------------------------------------------------------


def test_noop_outside_a_block_runs_the_plain_function_and_stores_nothing(storage):
    with storage.noop():
        assert mode_inc(1) == 2
        assert mode_inc_twice(1) == 3  # nested ops run plain too
    assert stored_calls(storage) == 0


def test_noop_inside_a_block_unwraps_refs_and_returns_plain_values(storage):
    with storage:
        x = mode_inc(20)
    with storage:
        x = mode_inc(20)
        with storage.noop():
            z = mode_add(x, 21)
            assert z == 42 and not hasattr(z, "hid")
        w = mode_add(x, 1)
    assert storage.unwrap(w) == 22
    assert stored_calls(storage) == 2  # mode_inc(20) and mode_add(x, 1), not mode_add(x, 21)
    assert len(storage.calls_of(mode_add)) == 1


def test_a_block_inside_noop_memoizes_again(storage):
    with storage.noop():
        assert mode_inc(1) == 2
        with storage:
            ref = mode_inc(5)
        assert mode_inc(7) == 8
    assert storage.unwrap(ref) == 6
    assert stored_calls(storage) == 1


def test_mandalas_mode_spelling(storage):
    with storage(mode="noop"):
        assert mode_inc(3) == 4
        with storage():
            ref = mode_inc(3)
    assert storage.unwrap(ref) == 4 and stored_calls(storage) == 1
    with pytest.raises(StorageOptionError, match="'run' and 'noop'"):
        storage(mode="dry")


def test_noop_covers_its_own_thread_only(storage):
    """A ContextVar: another thread's block memoizes while this one is in noop."""
    inside, done = threading.Barrier(2), threading.Event()
    results = {}

    def other_thread():
        inside.wait()  # the main thread is in its noop block now
        with storage:
            results["ref"] = mode_inc(100)
        done.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with storage.noop():
        inside.wait()
        done.wait()
        results["plain"] = mode_inc(200)
    worker.join()
    assert results["plain"] == 201
    assert storage.unwrap(results["ref"]) == 101
    assert stored_calls(storage) == 1


def test_a_thread_pool_inside_noop_runs_plain(storage):
    with storage:
        with storage.noop(), concurrent.futures.ThreadPoolExecutor(2) as pool:
            values = list(pool.map(mode_inc, range(4)))
    assert values == [1, 2, 3, 4]
    assert stored_calls(storage) == 0


def test_map_inside_noop_calls_the_plain_function(storage):
    with storage.noop():
        values = storage.map(mode_inc, [{"x": 1}, {"x": 2}], progress=False)
    assert values == [2, 3]
    assert stored_calls(storage) == 0


def test_an_op_sent_to_a_worker_process_from_noop_runs_plain(tmp_path):
    storage = Storage(tmp_path / "runs.db")
    with storage:
        with storage.noop(), concurrent.futures.ProcessPoolExecutor(1) as pool:
            values = list(pool.map(mode_inc, [1, 2]))
    assert values == [2, 3]
    assert stored_calls(Storage(tmp_path / "runs.db")) == 0


# --- allow_new_calls -------------------------------------------------------------


def test_no_new_calls_loads_stored_calls_and_refuses_a_miss(storage):
    with storage:
        mode_inc(20)
    storage.allow_new_calls(False)
    RUNS.clear()
    with storage:
        assert storage.unwrap(mode_inc(20)) == 21
        with pytest.raises(NewCallNotAllowedError) as caught:
            mode_inc(21)
    assert RUNS == []  # neither call ran
    error = caught.value
    assert error.op == "mode_inc" and error.arguments == {"x": 21}
    assert "mode_inc(x=21)" in str(error) and "allow_new_calls(True)" in str(error)
    assert isinstance(error, (NotStoredError, RuntimeError, MemostoreError))
    assert stored_calls(storage) == 1
    storage.allow_new_calls(True)
    with storage:
        assert storage.unwrap(mode_inc(21)) == 22


def test_no_new_calls_as_a_context_restores_the_setting(storage):
    with storage:
        mode_inc(1)
    with pytest.raises(NewCallNotAllowedError, match="mode_inc"):
        with storage.allow_new_calls(False), storage:
            mode_inc(1)
            mode_inc(2)
    assert storage.config.allow_new_calls is True
    with storage:
        assert storage.unwrap(mode_inc(2)) == 3


def test_no_new_calls_refuses_a_map_before_running_anything(storage):
    storage.map(mode_inc, [{"x": 1}], progress=False)
    RUNS.clear()
    with storage.allow_new_calls(False):
        assert storage.unwrap(storage.map(mode_inc, [{"x": 1}], progress=False)) == [2]
        with pytest.raises(NewCallNotAllowedError, match=r"mode_inc\(x=2\) \(and 1 more calls of it\)"):
            storage.map(mode_inc, [{"x": 1}, {"x": 2}, {"x": 3}], progress=False)
    assert RUNS == []


def test_no_new_calls_covers_every_thread_and_worker_process(storage):
    storage.allow_new_calls(False)
    errors = []

    def other_thread():
        try:
            with storage:
                mode_inc(5)
        except NewCallNotAllowedError as err:
            errors.append(err)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert len(errors) == 1 and RUNS == []
    # A storage travels to worker processes as its configuration, setting included.
    assert pickle.loads(pickle.dumps(storage)).config.allow_new_calls is False


def test_no_new_calls_reaches_ops_sent_to_worker_processes(tmp_path):
    storage = Storage(tmp_path / "runs.db")
    with storage:
        mode_inc(1)
    with storage.allow_new_calls(False), storage, concurrent.futures.ProcessPoolExecutor(1) as pool:
        assert storage.unwrap(list(pool.map(mode_inc, [1]))) == [2]
        with pytest.raises(NewCallNotAllowedError):
            list(pool.map(mode_inc, [2]))
    assert stored_calls(storage) == 1


def test_allow_new_calls_takes_a_bool(storage):
    with pytest.raises(StorageOptionError, match="True or False"):
        storage.allow_new_calls("no")
