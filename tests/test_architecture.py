"""The layering in STYLE.md and the strict typing are part of the build."""

import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT


def test_imports_only_go_down_the_layers():
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    result = subprocess.run([lint], cwd=REPO_ROOT, capture_output=True, text=True)
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
