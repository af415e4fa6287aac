"""A store on a PostgreSQL server that restarts, stops for a while, or is not there: real servers, real restarts.

These tests run their own throwaway server (not the session's): they stop and
restart it. Connections are counted in ``pg_stat_activity`` by the
``application_name`` each test puts in its URL, which travels to workers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import pytest

from memostore import Storage, StoreUnavailableError, op
from memostore.config import StorageConfig

from postgres_server import TemporaryServer, find_bin_dir, new_schema_url

PASSWORD = "s3cret-pw"  # the server trusts loopback, so any password works, and none may show anywhere


@pytest.fixture(scope="module")
def server() -> Iterator[TemporaryServer]:
    pytest.importorskip("psycopg", reason="pip install -e .[postgres] to test PostgreSQL")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries to start (and restart) a server of our own: install postgresql")
    started = TemporaryServer(bin_dir)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def app(server: TemporaryServer) -> tuple[str, str]:
    """A URL with a password and a schema of its own, and the application name its connections carry."""
    name = "memostore-test-" + uuid.uuid4().hex[:8]
    url = new_schema_url(server.url).replace("memostore@", f"memostore:{PASSWORD}@")
    return f"{url}&application_name={name}", name


def connections(server: TemporaryServer, application: str) -> int:
    """How many sessions the server has for ``application``."""
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=memostore dbname=postgres") as admin:
        found = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                              (application,)).fetchone()
    assert found is not None
    return int(found[0])


def eventually(condition: Callable[[], bool], within_s: float = 60.0) -> bool:
    """Whether ``condition()`` holds, looking again every 0.2 s for up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def opened(url: str, **options: Any) -> Storage:
    return Storage.from_config(dataclasses.replace(StorageConfig(db_url=url), **options))


@op
def bump(x: int) -> int:
    return x + 1


@op
def step(x: int) -> int:
    """Calls a nested op, so a worker computing it reads and writes the store itself."""
    return 2 * bump(x)


def test_close_gives_back_every_connection_and_a_later_use_reopens_one(server, app):
    url, name = app
    storage = Storage(db_url=url)
    with storage:
        bump(1)
    assert connections(server, name) == 1
    storage.close()
    # The server drops a closed session from pg_stat_activity when its backend process exits, a moment later.
    assert eventually(lambda: connections(server, name) == 0)
    storage.close()  # closing twice is fine
    with storage:
        assert storage.unwrap(bump(1)) == 2
    assert connections(server, name) == 1
    storage.close()
    assert eventually(lambda: connections(server, name) == 0)


def test_a_storage_works_again_after_its_server_restarts(server, app):
    url, _ = app
    storage = Storage(db_url=url)
    with storage:
        bump(1)
    server.restart()
    with storage:
        assert storage.unwrap(bump(1)) == 2  # a lookup on a new connection
        bump(2)  # and a commit
    server.restart()
    assert len(storage.cf(bump).df()) == 2
    storage.close()


def test_an_outage_shorter_than_retry_s_is_ridden_out(server, app):
    url, _ = app
    storage = Storage(db_url=url, retry_s=120)
    with storage:
        bump(0)
        bump(1)
        server.halt()
        threading.Timer(1.0, server.start).start()
    # Leaving the block committed the calls once the server was back.
    assert len(Storage(db_url=url).cf(bump).df()) == 2
    storage.close()


def test_past_retry_s_a_clean_error_and_the_pending_calls_are_committed_later(server, app, caplog):
    url, _ = app
    storage = Storage(db_url=url, retry_s=1)
    caplog.set_level(logging.DEBUG, logger="memostore")
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            with storage:
                bump(0)  # the first call of an op is committed at once (it may be slow: see claims)
                bump(1)  # a fast op's next calls wait for the end of the block
                server.halt()
    finally:
        server.start()
    message = str(raised.value)
    assert f"127.0.0.1:{server.port}" in message and "retry_s=1" in message
    assert "connection" in message.lower()  # the server's or libpq's own words
    assert PASSWORD not in message and PASSWORD not in caplog.text
    storage.commit()  # the server is back: the call computed before the outage is written now
    assert len(Storage(db_url=url).cf(bump).df()) == 2
    storage.close()


def test_an_unreachable_server_is_named_with_its_port_and_message(server):
    with pytest.raises(StoreUnavailableError) as raised:
        Storage(db_url=f"postgresql+psycopg://memostore:{PASSWORD}@127.0.0.1:1/postgres", retry_s=0.5)
    message = str(raised.value)
    assert "127.0.0.1:1" in message and "refused" in message.lower()
    assert "check that the path names a file" not in message and PASSWORD not in message


def test_a_mistake_in_the_url_is_not_retried_as_an_outage(server):
    # retry_s is an hour: retrying a database that does not exist would never end this test.
    url = f"postgresql+psycopg://memostore:{PASSWORD}@127.0.0.1:{server.port}/no_such_database"
    with pytest.raises(StoreUnavailableError, match='database "no_such_database" does not exist') as raised:
        Storage(db_url=url, retry_s=3600)
    assert f"127.0.0.1:{server.port}" in str(raised.value) and PASSWORD not in str(raised.value)


def test_the_config_repr_hides_the_password(app):
    url, _ = app
    storage = Storage(db_url=url)
    assert PASSWORD not in repr(storage.config) and PASSWORD not in repr(storage)
    assert "memostore:***@127.0.0.1" in repr(storage.config)
    assert storage.config.db_url == url  # workers still get the URL as configured
    storage.close()


_outage: list[Callable[[], None]] = []
executions: list[int] = []


@op
def stops_the_server_at_one(x: int) -> int:
    executions.append(x)
    if x == 1 and _outage:  # the first time only
        _outage.pop()()
    return bump(x)


def test_a_map_failing_on_an_outage_records_nothing_and_loses_nothing(server, app):
    url, _ = app
    storage = Storage(db_url=url, retry_s=1, claim_ttl_s=3600)
    _outage[:] = [server.halt]
    executions.clear()
    try:
        with pytest.raises(StoreUnavailableError):
            storage.map(stops_the_server_at_one, [{"x": 0}, {"x": 1}], on_error="record", progress=False)
    finally:
        server.start()
    assert storage.failures(stops_the_server_at_one).empty  # the outage is not the op's failure
    # The claims of the failed map are released by the next one, which does not wait for claim_ttl_s.
    again = storage.map(stops_the_server_at_one, [{"x": 0}, {"x": 1}], on_error="record", progress=False)
    assert storage.unwrap(list(again)) == [1, 2] and again.failed == 0
    assert (again.hits, again.computed) == (1, 1)  # the call finished before the outage was kept
    assert executions == [0, 1, 1]
    storage.close()


def test_process_workers_reconnect_after_a_restart_and_give_back_their_connections(server, app):
    url, name = app
    storage = opened(url, idle_close_s=1.0)
    first = storage.map(step, [{"x": x} for x in range(4)], executor="processes", n_jobs=2, progress=False)
    assert storage.unwrap(list(first)) == [2, 4, 6, 8]
    server.restart()  # the workers' cached storages now hold dead connections
    second = storage.map(step, [{"x": x} for x in range(4, 8)], executor="processes", n_jobs=2,
                         progress=False)
    assert storage.unwrap(list(second)) == [10, 12, 14, 16] and second.failed == 0
    assert len(storage.cf(bump).df()) == 8  # the nested calls, stored by the workers
    storage.close()
    assert eventually(lambda: connections(server, name) == 0)  # the idle workers closed theirs


def test_dask_workers_reconnect_after_a_restart_and_give_back_their_connections(server, app):
    distributed = pytest.importorskip("distributed", reason="pip install -e .[dask]")
    url, name = app
    storage = opened(url, idle_close_s=1.0)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        first = storage.map(step, [{"x": x} for x in range(3)], executor=client, progress=False)
        server.restart()
        second = storage.map(step, [{"x": x} for x in range(3, 6)], executor=client, progress=False)
        assert storage.unwrap(list(first) + list(second)) == [2, 4, 6, 8, 10, 12] and second.failed == 0
        storage.close()
        assert eventually(lambda: connections(server, name) == 0)
