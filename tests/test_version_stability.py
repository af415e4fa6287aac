"""Op versions that survive a Python upgrade, an entry point change and a memostore upgrade.

The sample ops live in ``version_sample.py``. Other Pythons (3.10-3.13, from
pyenv) run it in venvs cached outside the repository, keyed by the Python
version (``.ci/run`` makes them; a test makes a missing one). A Python this
machine lacks is skipped. memostore 0.1 (commit c82e2dd) is taken from this
repository's history with ``git archive``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memostore import Storage, upgrade_store

import version_sample
from helpers import REPO_ROOT

# Pinned: a change here changes every stored version (and needs a carry-over like former.py's).
GOLDEN_WITH_DEPS = {
    "annotated": "4c88b687d13175b5a6a8fab651e85d95",
    "configured": "46b6a1b3dbde6160026906d07d4acdd5",
    "grown": "7616e5bcf516b5e13e23473927346bae",
    "matcher": "ecc83aad52aafb608cf560489b3d9046",
    "walrus": "e04d5728aeaf3f9370833d0ef52df4ae",
    "formatted": "3a48842dd7ac077612ca6974422dc3de",
    "lambdas": "d768c06a0af1467d7c892d0c5e936c5f",
    "variadic": "b9fdfa51860e7a49646fd567c2291d76",
    "split": "4f0b936fe322f9fcd6a51428eeb7fc00",
    "twice": "60b6c75d840b7efaf690b59782b34d5a",
}
GOLDEN_WITHOUT_DEPS = {
    **GOLDEN_WITH_DEPS,
    "configured": "b4a1ba6ae444a31f0e87fb71f0259b2b",
    "grown": "fdd13e2804de90bf374f736c78dc3bfc",
    "matcher": "533939ead11d67a11b69d03f4cac8b1a",
    "walrus": "a2ead34b0f60e7f479c6360ecad28d8b",
    "formatted": "1754bb52c0dd9b152db899aacf15c2d2",
    "split": "4f0b936fe322f9fcd6a51428eeb7fc00",
}
SAMPLE = REPO_ROOT / "tests" / "version_sample.py"
FORMER_RELEASE = "c82e2dd"  # memostore 0.1: versions hashed ast.dump
COPYING_RELEASE = "1282fde"  # the last commit whose carry-over copied calls instead of moving them
THIS_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
OTHER_PYTHONS = [v for v in ("3.10", "3.11", "3.12", "3.13") if v != THIS_PYTHON]
VENV_CACHE = Path(os.environ.get("MEMOSTORE_VENV_CACHE", Path.home() / ".cache" / "memostore-test-venvs"))


def venv_python(minor: str) -> Path:
    """A venv of pyenv's Python ``minor`` with memostore's dependencies; skips if that Python is absent."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(pyenv_root.glob(f"versions/{minor}.*/bin/python"))
    if not found:
        pytest.skip(f"Python {minor} is not installed (pyenv)")
    base = found[-1]
    venv = VENV_CACHE / base.parent.parent.name  # the full version, e.g. 3.12.1
    python = venv / "bin" / "python"
    # Made again when pyproject.toml changes: a new dependency must reach the other Pythons too.
    ready = venv / f".ready-{hashlib.sha1((REPO_ROOT / 'pyproject.toml').read_bytes()).hexdigest()[:12]}"
    if not ready.exists():
        made = subprocess.run([str(base), "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode == 0:
            made = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(REPO_ROOT)],
                                  capture_output=True, text=True, timeout=900)
        if made.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot make a venv of Python {minor}: {made.stderr[-2000:]}")
            pytest.skip(f"cannot make a venv of Python {minor} (offline?)")
        ready.touch()
    return python


def run_sample(python: Path | str, code_root: Path, location: Path | str, as_script: bool) -> dict:
    """Run the sample on a SQLite file or database URL with memostore from ``code_root``: as a
    script (``deps_path="__main__"``) or imported (``deps_path="version_sample"``)."""
    if as_script:
        command = [str(python), str(SAMPLE), str(location)]
    else:
        command = [str(python), "-c", "import json, sys, version_sample as s; "
                   "print(json.dumps(s.run(s.open_storage(sys.argv[1], 'version_sample'))))", str(location)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code_root), str(SAMPLE.parent)])}
    result = subprocess.run(command, cwd=SAMPLE.parent, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def package_of(commit: str, root: Path) -> Path:
    """memostore's package at ``commit`` of this repository's history, in ``root``."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit, "memostore"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {commit} is not in this checkout (a shallow clone?)")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


@pytest.fixture(scope="module")
def former_release(tmp_path_factory) -> Path:
    """memostore 0.1's package, from this repository's history."""
    return package_of(FORMER_RELEASE, tmp_path_factory.mktemp("memostore-0.1"))


def sample_storage(db_path: Path) -> Storage:
    return Storage(db_path=db_path, deps_path="version_sample")


def test_sample_versions_are_pinned():
    assert version_sample.versions(Storage(deps_path="version_sample")) == GOLDEN_WITH_DEPS
    assert {o.name: o.version for o in version_sample.OPS} == GOLDEN_WITHOUT_DEPS


@pytest.mark.parametrize("first_as_script", [True, False], ids=["script-then-module", "module-then-script"])
def test_a_script_and_the_same_module_imported_share_versions_and_hits(tmp_path, first_as_script):
    db_path = tmp_path / "sample.db"
    first = run_sample(sys.executable, REPO_ROOT, db_path, as_script=first_as_script)
    second = run_sample(sys.executable, REPO_ROOT, db_path, as_script=not first_as_script)
    assert first["versions"] == second["versions"] == GOLDEN_WITH_DEPS
    assert len(first["computed"]) == len(version_sample.OPS)
    assert second["computed"] == []
    # One stored version, its dependencies named relative to their root: no __main__.helper.
    table = sample_storage(db_path).versions(version_sample.grown)
    assert table["dependencies"].tolist() == [["SCALE", "helper"]]


@pytest.mark.parametrize("minor", OTHER_PYTHONS)
def test_every_python_gives_the_same_versions_and_reads_the_others_store(tmp_path, minor):
    python = venv_python(minor)
    db_path = tmp_path / "sample.db"
    there = run_sample(python, REPO_ROOT, db_path, as_script=True)
    assert there["versions"] == GOLDEN_WITH_DEPS
    here = version_sample.run(sample_storage(db_path))
    assert here == {"versions": GOLDEN_WITH_DEPS, "computed": []}


@pytest.mark.parametrize("as_script", [True, False], ids=["script", "module"])
def test_a_store_written_by_memostore_0_1_keeps_every_hit(tmp_path, former_release, as_script):
    db_path = tmp_path / "sample.db"
    old = run_sample(sys.executable, former_release, db_path, as_script=as_script)
    assert len(old["computed"]) == len(version_sample.OPS)
    assert set(old["versions"].values()).isdisjoint(GOLDEN_WITH_DEPS.values())  # the formula did change
    storage = sample_storage(db_path)
    assert version_sample.run(storage) == {"versions": GOLDEN_WITH_DEPS, "computed": []}
    assert storage.stale_calls() == []
    assert all(storage.drop_stale(o) == [] for o in version_sample.OPS)
    assert version_sample.run(sample_storage(db_path))["computed"] == []  # and in a later process


@pytest.mark.parametrize("minor", OTHER_PYTHONS)
def test_a_store_written_by_memostore_0_1_under_another_python_keeps_every_hit(tmp_path, former_release, minor):
    db_path = tmp_path / "sample.db"
    old = run_sample(venv_python(minor), former_release, db_path, as_script=True)
    assert len(old["computed"]) == len(version_sample.OPS)
    storage = sample_storage(db_path)
    assert version_sample.run(storage) == {"versions": GOLDEN_WITH_DEPS, "computed": []}
    assert storage.stale_calls() == []


def test_a_store_written_by_memostore_0_1_without_deps_path_keeps_every_hit(tmp_path, former_release):
    db_path = tmp_path / "sample.db"
    code = ("import sys, version_sample; from memostore import Storage; "
            "version_sample.run(Storage(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(former_release), str(SAMPLE.parent)])}
    subprocess.run([sys.executable, "-c", code, str(db_path)], env=env, check=True, timeout=300)
    storage = Storage(db_path=db_path)
    assert version_sample.run(storage) == {"versions": GOLDEN_WITHOUT_DEPS, "computed": []}
    assert storage.stale_calls() == []


MADE_BY_EXEC = '''
import sys
from memostore import Storage, op

namespace = {}
exec("def made(x):\\n    return [abs(v) * 2 for v in x]\\n", namespace)  # no source: versioned by bytecode
made = op(namespace["made"])
if __name__ == "__main__":
    with Storage(sys.argv[1]):
        made([3])
'''


@pytest.mark.parametrize("minor", OTHER_PYTHONS)
def test_explain_names_another_python_for_code_without_source(tmp_path, minor):
    script = tmp_path / "made.py"
    script.write_text(MADE_BY_EXEC)
    db_path = tmp_path / "made.db"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([str(venv_python(minor)), str(script), str(db_path)], env=env, check=True, timeout=300)
    namespace: dict = {}
    exec(MADE_BY_EXEC, namespace)
    explanation = Storage(db_path=db_path).explain(namespace["made"], [3])  # bytecode differs by Python
    assert not explanation.hit
    assert explanation.differences == [
        f"op version: stored {explanation.nearest.version[:8]}, now "
        f"{namespace['made'].version[:8]} (another Python: code without source is versioned by its "
        f"bytecode, which Python {minor} compiled and Python {THIS_PYTHON} compiles differently)"]


def test_explain_says_the_code_changed_for_code_without_source(tmp_path):
    storage = Storage(db_path=tmp_path / "made.db")
    namespace: dict = {}
    exec(MADE_BY_EXEC, namespace)
    with storage:
        namespace["made"]([3])
    exec(MADE_BY_EXEC.replace("* 2", "* 3"), namespace)
    explanation = storage.explain(namespace["made"], [3])
    assert explanation.differences[0].endswith("(the code changed)")


def test_a_postgres_store_written_by_memostore_0_1_keeps_every_hit(former_release, postgres_url):
    old = run_sample(sys.executable, former_release, postgres_url, as_script=True)
    assert len(old["computed"]) == len(version_sample.OPS)
    # Its tables are of schema version 1: a PostgreSQL store is upgraded on purpose, once.
    assert upgrade_store(db_url=postgres_url) == ["v1", "v2", "v3"]
    storage = Storage(db_url=postgres_url, deps_path="version_sample")
    assert version_sample.run(storage) == {"versions": GOLDEN_WITH_DEPS, "computed": []}
    assert storage.stale_calls() == []


PIPELINE = '''
import json, sys
from memostore import Storage, op

@op
def load(n):
    return list(range(n))

@op
def fit(data):
    return sum(data)

@op
def score(model):
    return model / 10

storage = Storage(db_path=sys.argv[1])
with storage:
    for n in (3, 4):
        score(fit(load(n)))
if len(sys.argv) < 3:  # memostore 0.1 knows no last_run
    sys.exit()
table = storage.cf(score).expand_all().df(include_calls=False)
print(json.dumps({"rows": sorted(zip(table["n"].tolist(), table.iloc[:, -1].tolist())),
                  "computed": storage.last_run.computed, "stale": len(storage.stale_calls()),
                  "calls": {o.name: len(storage.calls_of(o)) for o in (load, fit, score)}}))
'''


def run_pipeline(code_root: Path, script: Path, db_path: Path, report: bool = True) -> dict | None:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    result = subprocess.run([sys.executable, str(script), str(db_path), *(["report"] if report else [])], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]) if report else None


@pytest.mark.parametrize("carried_by", ["this release", "a release that copied calls"])
def test_a_store_of_memostore_0_1_holds_each_computation_once_after_its_first_run(tmp_path, former_release,
                                                                                 carried_by):
    """load -> fit -> score for two inputs: two computations, one frame row and one call of each op each.

    A release that carried calls over by copying them left each computation three or four times;
    this release merges the copies the first time it runs the ops.
    """
    script, db_path = tmp_path / "pipeline.py", tmp_path / "pipeline.db"
    script.write_text(PIPELINE)
    run_pipeline(former_release, script, db_path, report=False)
    if carried_by != "this release":
        (tmp_path / "copying").mkdir()
        copied = run_pipeline(package_of(COPYING_RELEASE, tmp_path / "copying"), script, db_path)
        assert copied is not None and len(copied["rows"]) > 2  # as that release left it
    every_time = {"rows": [[3, 0.3], [4, 0.6]], "computed": 0, "stale": 0,
                  "calls": {"load": 2, "fit": 2, "score": 2}}
    assert run_pipeline(REPO_ROOT, script, db_path) == every_time
    assert run_pipeline(REPO_ROOT, script, db_path) == every_time  # and in a later process
