"""Real stores on disk and in memory, shared by the test files."""

from __future__ import annotations

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
