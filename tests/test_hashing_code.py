"""Functions and classes of your own code count by their code in content ids, so an op given one
recomputes after you edit it; installed code (the standard library, site-packages) counts by name."""

import importlib
import json
import math
import subprocess
import sys

import pytest

from memostore import StaleCodeError, content_id

from helpers import REPO_ROOT

MODULE = '''
def transform(x):
    """Adds one."""
    return x + 1


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def apply(self, x):
        return x * self.factor
'''


def import_fresh(tmp_path, monkeypatch, name, source):
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def edited(module, path, old, new):
    path.write_text(path.read_text().replace(old, new))
    importlib.invalidate_caches()
    return importlib.reload(module)


def test_editing_a_function_of_your_own_module_changes_the_ids_of_values_holding_it(tmp_path, monkeypatch):
    module = import_fresh(tmp_path, monkeypatch, "hashing_code_fn", MODULE)
    path = tmp_path / "hashing_code_fn.py"
    before = content_id(module.transform), content_id({"step": module.transform})
    module = edited(module, path, "return x + 1", "return x + 2")
    after = content_id(module.transform), content_id({"step": module.transform})
    assert before[0] != after[0] and before[1] != after[1]
    # A docstring or comment is not code: the id stays.
    module = edited(module, path, '"""Adds one."""', '"""Adds two."""\n    # a comment')
    assert (content_id(module.transform), content_id({"step": module.transform})) == after


def test_editing_a_class_of_your_own_module_changes_its_id_but_not_its_instances(tmp_path, monkeypatch):
    # A class given as a value (model_class=Scaler) counts by its code; an instance by its class's name and its
    # attributes, so adding a method or an Enum member does not make every stored call on instances recompute.
    module = import_fresh(tmp_path, monkeypatch, "hashing_code_cls", MODULE)
    path = tmp_path / "hashing_code_cls.py"
    before = content_id(module.Scaler), content_id([module.Scaler]), content_id(module.Scaler(2))
    assert content_id(module.Scaler(2)) == before[2] != content_id(module.Scaler(3))
    module = edited(module, path, "return x * self.factor", "return x * self.factor + 1")
    after = content_id(module.Scaler), content_id([module.Scaler]), content_id(module.Scaler(2))
    assert before[0] != after[0] and before[1] != after[1] and before[2] == after[2]


def test_installed_functions_keep_their_ids_by_name():
    # Pickled by name, as in every earlier hash format: a library upgrade changes no id.
    assert content_id(json.dumps) == "3ac2fa9df39261f8cbc4a38b7629e2ef"
    assert content_id(math.sqrt) == "151a2cc8e1cc3e8f53c6bcfe6c471201"


SCRIPT = '''
import sys
from memostore import Storage, op
import hashing_code_pkg


@op
def apply_to(fn, x):
    return fn(x)


storage = Storage(db_path=sys.argv[1])
with storage:
    result = apply_to(hashing_code_pkg.transform, 10)
print(storage.unwrap(result), storage.last_run.computed)
'''


def test_an_op_given_your_function_recomputes_after_you_edit_it(tmp_path):
    (tmp_path / "hashing_code_pkg.py").write_text(MODULE)
    (tmp_path / "script.py").write_text(SCRIPT)

    def run():
        result = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path / "runs.db")],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path,
                                env={"PYTHONPATH": f"{REPO_ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert run() == ["11", "1"]
    assert run() == ["11", "0"]  # unchanged: a hit
    source = tmp_path / "hashing_code_pkg.py"
    source.write_text(MODULE.replace("return x + 1", "return x + 1000"))
    assert run() == ["1010", "1"]  # the edited function's call is a new call, not the stored 11


def test_a_function_whose_file_changed_after_its_import_is_refused(tmp_path, monkeypatch):
    # Hashing the new text would file the old code's results under the edited code's id.
    module = import_fresh(tmp_path, monkeypatch, "hashing_code_stale", MODULE)
    (tmp_path / "hashing_code_stale.py").write_text(MODULE.replace("return x + 1", "return x + 2"))
    with pytest.raises(StaleCodeError, match="hashing_code_stale"):
        content_id(module.transform)
    reloaded = edited(module, tmp_path / "hashing_code_stale.py", "x + 2", "x + 2")  # importlib.reload
    assert content_id(reloaded.transform) != content_id(json.dumps)
