"""storage.map on a real Dask LocalCluster: futures released as results are read, a lost
worker, the op shipped once, task keys, executor_options and chunksize."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from memostore import MapOptionError, Storage, op

from helpers import committed_calls

distributed = pytest.importorskip("distributed", reason="pip install -e .[dask]")
from dask.utils import key_split  # noqa: E402
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

MIB = 1 << 20


@op
def five_mib(i):
    time.sleep(0.1)
    return os.urandom(5 * MIB)


@op
def marked(x, marks, seconds):
    """Leaves one file per execution in ``marks``, named by x and the Dask task: the test counts executions,
    not stored calls, and looks up the task of a call."""
    Path(marks, f"{x}-{uuid.uuid4().hex}-{distributed.get_worker().get_current_task()}").touch()
    time.sleep(seconds)
    return x * 10


@op
def fails_once(x, marks):
    """Raises the first time it runs for ``x``, succeeds the next."""
    mark = Path(marks, str(x))
    if not mark.exists():
        mark.touch()
        raise RuntimeError(f"first try of {x}")
    return x + 1


@op
def pid_of(x):
    return x, os.getpid()


@op
def flaky_chunk(x):
    if x == 3:
        raise ValueError("three")
    return x


BIG_GLOBAL = os.urandom(MIB)  # the op below pickles it along with its function


@op
def uses_big_global(x):
    return x + len(BIG_GLOBAL) - len(BIG_GLOBAL)


class TaskWatch(SchedulerPlugin):
    """On the scheduler: the keys of one op's tasks, their dependencies, and how many results it held at once."""

    def __init__(self, prefix: str) -> None:
        self.name = f"watch-{prefix}"
        self.prefix = prefix
        self.keys: list[str] = []
        self.dependencies: dict[str, list[str]] = {}
        self.held: set[str] = set()
        self.peak_held = 0

    def transition(self, key, start, finish, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not str(key).startswith(self.prefix + "-"):
            return
        if start == "released" and finish == "waiting":
            self.keys.append(key)
            task = self.scheduler.tasks[key]
            self.dependencies[key] = [dependency.key for dependency in task.dependencies]
        if finish == "memory":
            self.held.add(key)
            self.peak_held = max(self.peak_held, len(self.held))
        elif start == "memory":
            self.held.discard(key)

    async def start(self, scheduler) -> None:  # type: ignore[no-untyped-def]
        self.scheduler = scheduler


def watch(client, prefix: str) -> None:
    client.register_plugin(TaskWatch(prefix))


def watched(client, prefix: str) -> dict:
    def read(dask_scheduler):  # type: ignore[no-untyped-def]
        plugin = dask_scheduler.plugins.pop(f"watch-{prefix}")
        return {"keys": list(plugin.keys), "dependencies": dict(plugin.dependencies), "peak_held": plugin.peak_held,
                "held": len(plugin.held)}

    return client.run_on_scheduler(read)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def test_each_result_is_released_once_read(client, tmp_path):
    watch(client, "five_mib")
    storage = Storage(db_path=tmp_path / "big.db")
    refs = storage.map(five_mib, [{"i": i} for i in range(40)], executor=client, progress=False)
    assert refs.computed == 40
    seen = watched(client, "five_mib")
    assert len(seen["keys"]) == 40
    assert seen["peak_held"] < 40  # never all 40 x 5 MiB on the cluster at once
    assert not client.futures  # nothing left behind
    assert len(storage.unwrap(refs[39])) == 5 * MIB


def test_task_keys_carry_the_op_name_and_a_big_op_travels_once(client, tmp_path):
    watch(client, "uses_big_global")
    storage = Storage(db_path=tmp_path / "keys.db")
    refs = storage.map(uses_big_global, [{"x": x} for x in range(12)], executor=client, progress=False)
    assert storage.unwrap(refs) == list(range(12))
    seen = watched(client, "uses_big_global")
    assert {key_split(key) for key in seen["keys"]} == {"uses_big_global"}  # what the dashboard shows
    shipped = {dependency for dependencies in seen["dependencies"].values() for dependency in dependencies}
    assert len(shipped) == 1  # the op's function scattered once, every task refers to it
    assert all(len(dependencies) == 1 for dependencies in seen["dependencies"].values())


def test_executor_options_reach_dask(client, tmp_path):
    pids = client.run(os.getpid)
    address, pid = sorted(pids.items())[0]
    storage = Storage(db_path=tmp_path / "options.db")
    refs = storage.map(pid_of, [{"x": x} for x in range(6)], executor=client, progress=False,
                       executor_options={"workers": [address], "priority": 10})
    assert {worker_pid for _, worker_pid in storage.unwrap(refs)} == {pid}


def test_retries_rerun_a_failed_call(client, tmp_path):
    storage = Storage(db_path=tmp_path / "retries.db")
    marks = tmp_path / "marks"
    marks.mkdir()
    items = [{"x": x, "marks": str(marks)} for x in range(4)]
    refs = storage.map(fails_once, items, executor=client, progress=False, on_error="record",
                       executor_options={"retries": 1})
    assert (refs.computed, refs.failed) == (4, 0)
    assert storage.unwrap(refs) == [1, 2, 3, 4]


def test_without_retries_a_failure_is_recorded(client, tmp_path):
    storage = Storage(db_path=tmp_path / "no_retries.db")
    marks = tmp_path / "marks"
    marks.mkdir()
    refs = storage.map(fails_once, [{"x": 0, "marks": str(marks)}], executor=client, progress=False,
                       on_error="record")
    assert refs.failed == 1


def test_chunksize_batches_calls_into_fewer_tasks(client, tmp_path):
    watch(client, "pid_of")
    storage = Storage(db_path=tmp_path / "chunks.db")
    refs = storage.map(pid_of, [{"x": x} for x in range(25)], executor=client, progress=False, chunksize=10)
    assert [x for x, _ in storage.unwrap(refs)] == list(range(25))
    assert len(watched(client, "pid_of")["keys"]) == 3


def test_a_failure_in_a_chunk_is_that_call_only(client, tmp_path):
    storage = Storage(db_path=tmp_path / "chunk_failure.db")
    refs = storage.map(flaky_chunk, [{"x": x} for x in range(8)], executor=client, progress=False, chunksize=4,
                       on_error="record")
    assert (refs.computed, refs.failed) == (7, 1)
    assert refs[3] is None and storage.unwrap(refs[4]) == 4
    with pytest.raises(ValueError, match="three"):
        storage.map(flaky_chunk, [{"x": 3}], executor=client, progress=False, chunksize=4, retry_failed=True)


def test_executor_options_need_a_dask_client_and_known_names(client, tmp_path):
    storage = Storage(db_path=tmp_path / "bad.db")
    with pytest.raises(MapOptionError, match="need a dask.distributed.Client"):
        storage.map(pid_of, [{"x": 1}], executor="processes", executor_options={"retries": 2})
    with pytest.raises(MapOptionError, match=r"\['key'\]"):
        storage.map(pid_of, [{"x": 1}], executor=client, executor_options={"key": "mine"})
    with pytest.raises(MapOptionError, match="chunksize"):
        storage.map(pid_of, [{"x": 1}], executor=client, chunksize=0)


def tasks_of(marks: Path, xs: list[int]) -> set[str]:
    """The Dask tasks that ran ``marked`` for these x."""
    return {name.split("-", 2)[2] for name in os.listdir(marks) if int(name.split("-")[0]) in set(xs)}


def known_tasks(dask_scheduler) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(key) for key in dask_scheduler.tasks}


def test_a_lost_worker_recomputes_only_unread_calls(tmp_path):
    db_path, marks = tmp_path / "lost.db", tmp_path / "marks"
    marks.mkdir()
    items = [{"x": x, "marks": str(marks), "seconds": 0.1} for x in range(80)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as own_client:
        victim = sorted(own_client.run(os.getpid).values())[0]
        stored_before_kill: list[int] = []

        def kill_once_some_are_stored() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and committed_calls(db_path) < 10:
                time.sleep(0.05)
            stored_before_kill.extend(Storage(db_path=db_path).cf(marked).df()["x"])
            # The map released their futures before committing them; the scheduler forgets a task once that
            # message reached it. Wait for that, not a fixed time: a task still wanted is computed again.
            tasks = tasks_of(marks, stored_before_kill)
            while time.monotonic() < deadline and tasks & set(own_client.run_on_scheduler(known_tasks)):
                time.sleep(0.05)
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_once_some_are_stored)
        killer.start()
        refs = Storage(db_path=db_path).map(marked, items, executor=own_client, progress=False)
        killer.join()
        assert victim not in own_client.run(os.getpid).values()  # the worker really died (its nanny restarted it)
    assert refs.computed == 80
    assert Storage(db_path=db_path).unwrap(refs) == [x * 10 for x in range(80)]
    runs = [int(name.split("-")[0]) for name in os.listdir(marks)]
    assert len(stored_before_kill) >= 10
    assert all(runs.count(x) == 1 for x in stored_before_kill)  # nothing stored was computed again
    assert set(runs) == set(range(80))
