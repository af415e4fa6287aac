"""Helpers shared by the test files (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (with ``env`` added); returns its stdout, fails on error."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def require_dot() -> None:
    """Skip a test that renders drawings where Graphviz's dot is missing (CI fails on such a skip)."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")


def committed_calls(db_path) -> int:
    """How many calls the store at ``db_path`` holds, read without opening it as a Storage."""
    if not db_path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as connection:
            return connection.execute("SELECT COUNT(*) FROM memostore_calls").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet
