"""Real stores on disk and in memory, shared by the test files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from memostore import Storage


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Every storage kind a user can open on one machine."""
    if request.param == "memory":
        store = Storage()
    else:
        store = Storage(db_path=tmp_path / "runs.db")
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
