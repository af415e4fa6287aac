"""With deps_path, an op's version describes the code that runs, not the files on disk.

Each test runs real Python processes on a SQLite file: one that keeps running
after a helper file is edited (a notebook, a long script, a kept worker pool),
and a fresh one that imports the edited code and must never take the old
code's result as a hit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

HELPERS = "def helper(x, step=1):\n    return x + step\n"
OPS = "from memostore import op\nfrom helpers import helper\n\n\n@op\ndef work(x):\n    return helper(x)\n"


def run(tmp_path: Path, script: str) -> dict:
    """Run ``script`` in a new process in ``tmp_path``; it prints one JSON line last."""
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def project(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "ops.py").write_text(OPS)
    return tmp_path


FRESH = """
    import json
    from memostore import Storage
    import ops
    storage = Storage(db_path="st.db", deps_path=".")
    with storage:
        result = storage.unwrap(ops.work(2))
    print(json.dumps({"result": result, "version": storage.version_of(ops.work)}))
"""


def test_results_of_old_code_are_filed_under_the_old_code_after_a_helper_file_is_edited(tmp_path):
    project(tmp_path)
    running = run(tmp_path, """
        import json
        from memostore import Storage
        import ops
        storage = Storage(db_path="st.db", deps_path=".")
        with storage:
            storage.unwrap(ops.work(1))
        before = storage.version_of(ops.work)
        open("helpers.py", "w").write("def helper(x):\\n    return x + 100\\n")
        with storage:  # still the old helper, which this process runs
            result = storage.unwrap(ops.work(2))
        print(json.dumps({"result": result, "before": before, "after": storage.version_of(ops.work)}))
    """)
    assert running["result"] == 3
    assert running["after"] == running["before"]
    fresh = run(tmp_path, FRESH)
    assert fresh["result"] == 102  # computed by the edited helper, not the old result as a hit
    assert fresh["version"] != running["before"]


@pytest.mark.parametrize("edited", ["def helper(x, step=1):\\n    return x + step + 99\\n",
                                    "def helper(x, step=100):\\n    return x + step\\n"], ids=["body", "default"])
def test_a_helper_edited_between_import_and_first_block_is_refused(tmp_path, edited):
    project(tmp_path)
    refused = run(tmp_path, f"""
        import json
        from memostore import StaleCodeError, Storage
        import ops
        open("helpers.py", "w").write("{edited}")
        storage = Storage(db_path="st.db", deps_path=".")
        try:
            with storage:
                storage.unwrap(ops.work(2))
            print(json.dumps({{"error": None}}))
        except StaleCodeError as err:
            print(json.dumps({{"error": str(err)}}))
    """)
    message = refused["error"]
    assert message is not None
    assert "op 'work'" in message and "helpers.helper" in message and "helpers.py" in message
    assert "importlib.reload" in message
    assert run(tmp_path, FRESH)["result"] == 102  # nothing wrong was stored


def test_unchanged_code_keeps_its_version_when_its_file_changes_around_it(tmp_path):
    project(tmp_path)
    first = run(tmp_path, FRESH)
    unchanged = run(tmp_path, """
        import json
        from memostore import Storage
        import ops
        # Lines added above the helper, its docstring and comments: the code itself is the same.
        open("helpers.py", "w").write('def added():\\n    return 0\\n\\n\\ndef helper(x, step=1):\\n'
                                      '    "Docs do not count."\\n    return x + step  # nor comments\\n')
        storage = Storage(db_path="st.db", deps_path=".")
        with storage:
            result = storage.unwrap(ops.work(2))
        print(json.dumps({"result": result, "version": storage.version_of(ops.work)}))
    """)
    assert unchanged == first == {"result": 3, "version": first["version"]}
    assert run(tmp_path, FRESH) == first


def test_reloading_an_edited_helper_gives_the_new_version_and_results(tmp_path):
    project(tmp_path)
    first = run(tmp_path, FRESH)
    reloaded = run(tmp_path, """
        import importlib, json
        from memostore import Storage
        import helpers, ops
        storage = Storage(db_path="st.db", deps_path=".")
        with storage:
            old = storage.unwrap(ops.work(2))
        open("helpers.py", "w").write("def helper(x):\\n    return x + 100\\n")
        importlib.reload(helpers)
        importlib.reload(ops)
        with storage:
            new = storage.unwrap(ops.work(2))
        print(json.dumps({"old": old, "new": new, "version": storage.version_of(ops.work)}))
    """)
    assert reloaded["old"] == 3 and reloaded["new"] == 102
    assert reloaded["version"] != first["version"]
    assert run(tmp_path, FRESH) == {"result": 102, "version": reloaded["version"]}


def test_functions_without_a_file_defined_in_main_still_work(tmp_path):
    code = "def helper(x):\\n    return x * 3\\n\\n@op\\ndef tripled(x):\\n    return helper(x)\\n"
    script = f"""
        import json
        from memostore import Storage, op
        exec(compile("{code}", "<cell>", "exec"))
        storage = Storage(db_path="st.db", deps_path="__main__")
        with storage:
            result = storage.unwrap(tripled(2))
        print(json.dumps({{"result": result, "version": storage.version_of(tripled)}}))
    """
    first = run(tmp_path, script)
    assert first["result"] == 6
    assert run(tmp_path, script) == first


POOL = """
    import importlib, json, sys
    from memostore import Storage
    import helpers, ops
    if __name__ == "__main__":
        storage = Storage(db_path="st.db", deps_path=".")
        storage.map(ops.work, [{"x": i} for i in range(4)], executor="processes", n_jobs=2, progress=False)
        open("helpers.py", "w").write("def helper(x):\\n    return x + 100\\n")
        if sys.argv[-1] == "reload":
            importlib.reload(helpers)
            importlib.reload(ops)
        else:  # this process keeps the old helper, but the map's new workers import the edited one
            from memostore.executors import _pools
            for pool in _pools.values():
                pool.shutdown(wait=True)
            _pools.clear()
        try:
            refs = storage.map(ops.work, [{"x": i} for i in range(10, 14)], executor="processes", n_jobs=2,
                               progress=False)
            print(json.dumps({"results": [storage.unwrap(r) for r in refs], "error": None}))
        except Exception as err:
            print(json.dumps({"results": None, "error": f"{type(err).__name__}: {err}"}))
"""


def run_pool(tmp_path: Path, mode: str) -> dict:
    (tmp_path / "pool.py").write_text(textwrap.dedent(POOL))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "pool.py", mode], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kept_process_pool_computes_with_the_helper_reloaded_in_the_map_process(tmp_path):
    project(tmp_path)
    assert run_pool(tmp_path, "reload") == {"results": [110, 111, 112, 113], "error": None}
    assert run(tmp_path, FRESH)["result"] == 102


def test_workers_with_other_helpers_than_the_map_process_are_refused(tmp_path):
    project(tmp_path)
    refused = run_pool(tmp_path, "no reload")
    assert refused["results"] is None
    assert refused["error"].startswith("StaleWorkerError: storage.map(op 'work')")
    assert "helpers.helper" in refused["error"] and "importlib.reload" in refused["error"]
    assert run(tmp_path, FRESH)["result"] == 102
