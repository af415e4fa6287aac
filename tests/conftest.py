"""Real stores on disk and in memory, shared by the test files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from memostore import Storage

from postgres_server import URL_VARIABLE, TemporaryServer, find_bin_dir, new_schema_url

# No per-example deadline: on a loaded two-core CI machine one slow example (a GC pause, a first import) would fail a
# property that holds. Likewise no too_slow health check, which times the drawing of the first examples. Every
# @settings(...) in the suite starts from this profile, loaded before test modules import (a test that lists its own
# suppress_health_check replaces this one's list: it names too_slow too).
settings.register_profile("memostore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("memostore")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server: the one named by the environment, or a temporary one."""
    if os.environ.get(URL_VARIABLE):
        yield os.environ[URL_VARIABLE]
        return
    pytest.importorskip("psycopg", reason="pip install -e .[postgres] to test PostgreSQL")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL: install Debian's postgresql package or set {URL_VARIABLE}")
    server = TemporaryServer(bin_dir)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A URL to an empty schema of its own on the test server."""
    return new_schema_url(postgres_admin_url)


@pytest.fixture(params=["memory", "file", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Every storage kind a user can open: in memory, a SQLite file, PostgreSQL."""
    if request.param == "memory":
        store = Storage()
    elif request.param == "file":
        store = Storage(db_path=tmp_path / "runs.db")
    else:
        store = Storage(db_url=request.getfixturevalue("postgres_url"))
    yield store
    store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI every test must run: a skip there (a missing dot, a missing server) fails."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything it needs is installed: {report.longrepr}"
