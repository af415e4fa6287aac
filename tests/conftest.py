"""Real stores on disk and in memory, shared by the test files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from memostore import Storage

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def run_python(code: str, cwd: Path, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter; returns its stdout, fails on error."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
