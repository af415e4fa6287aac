"""The layering in STYLE.md and the strict typing are part of the build."""

import subprocess
import sys

import pytest

from helpers import REPO_ROOT


def test_imports_only_go_down_the_layers():
    pytest.importorskip("importlinter", reason="pip install -e .[test]")
    # The lint-imports command, run with this interpreter (its script may not be on PATH).
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_ruff_passes():
    # pyproject's [tool.ruff]: pyflakes, pycodestyle, import order and bugbear over the whole checkout.
    pytest.importorskip("ruff")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "memostore", "tests", "benchmarks", "tutorials"],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes():
    pytest.importorskip("mypy")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_memostore_loads_no_optional_dependency():
    code = ("import sys, memostore; "
            "print(sorted(m for m in ('pandas', 'graphviz', 'dask', 'psycopg', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
