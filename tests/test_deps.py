"""Dependency-aware versions, with code edited for real: modules written to a
temporary package, edited, and reloaded."""

from __future__ import annotations

import importlib
import linecache
import subprocess
import sys
import textwrap

import pytest

from memostore import Storage
from memostore.deps import Roots, discover

HELPERS = '''
from memostore import track

SCALE = 10


@track
def offset(x):
    return x + 100


def scale(x):
    """Multiply by the scale."""
    return x * SCALE


def unrelated(x):
    return x - 1


class Model:
    def predict(self, x):
        return x + 1
'''

PIPELINE = '''
from memostore import op
from proj import helpers
from proj.helpers import Model

RUNS = []


@op
def compute(x):
    RUNS.append("compute")
    return helpers.scale(x) + 1


@op
def predict(x):
    RUNS.append("predict")
    return Model().predict(x)


@op
def alone(x):
    RUNS.append("alone")
    return x * 2


@op
def dynamic(x):
    RUNS.append("dynamic")
    return getattr(helpers, "offset")(x)  # a lookup by name: only @track makes it visible
'''


class Project:
    """A package on disk whose modules the test edits and reloads."""

    def __init__(self, root):
        self.package = root / "proj"
        self.package.mkdir()
        (self.package / "__init__.py").write_text("")
        self.write("helpers", HELPERS)
        self.write("pipeline", PIPELINE)
        sys.path.insert(0, str(root))
        self.pipeline = importlib.import_module("proj.pipeline")

    def write(self, module, text):
        path = self.package / f"{module}.py"
        path.write_text(textwrap.dedent(text))
        linecache.checkcache(str(path))

    def edit(self, module, old, new):
        path = self.package / f"{module}.py"
        self.write(module, path.read_text().replace(old, new))
        importlib.reload(sys.modules["proj.helpers"])
        self.pipeline = importlib.reload(sys.modules["proj.pipeline"])

    def run(self, storage):
        """Call every op once; returns which ones computed."""
        with storage:
            for name in ("compute", "predict", "alone", "dynamic"):
                getattr(self.pipeline, name)(3)
        return sorted(self.pipeline.RUNS)

    def close(self):
        sys.path.remove(str(self.package.parent))
        for name in [m for m in sys.modules if m == "proj" or m.startswith("proj.")]:
            del sys.modules[name]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # every reload reads the edited source
    project = Project(tmp_path)
    yield project
    project.close()


@pytest.fixture(params=["directory", "module names"])
def storage(request, project, tmp_path):
    deps_path = str(project.package) if request.param == "directory" else ["proj"]
    return Storage(db_path=tmp_path / "deps.db", deps_path=deps_path)


def test_discovery_follows_helpers_classes_and_constants(project):
    # Names are relative to the root; full_name keeps the absolute one.
    for roots in (Roots(["proj"]), Roots([str(project.package)])):
        found = {(d.name, d.full_name): d.kind for d in discover(project.pipeline.compute.func, roots)}
        assert found == {("helpers.scale", "proj.helpers.scale"): "function",
                         ("helpers.SCALE", "proj.helpers.SCALE"): "constant"}
        found = {(d.name, d.full_name): d.kind for d in discover(project.pipeline.predict.func, roots)}
        assert found == {("helpers.Model", "proj.helpers.Model"): "class"}
        assert discover(project.pipeline.alone.func, roots) == []


def test_library_code_is_never_tracked(project):
    assert discover(project.pipeline.compute.func, Roots(["elsewhere"])) == []


def test_editing_a_helper_recomputes_exactly_the_ops_that_reach_it(project, storage):
    assert project.run(storage) == ["alone", "compute", "dynamic", "predict"]
    project.edit("helpers", "return x * SCALE", "return x * SCALE * 2")
    assert project.run(storage) == ["compute"]
    project.edit("helpers", "        return x + 1\n", "        return x + 2\n")
    assert project.run(storage) == ["predict"]


def test_tracked_helpers_found_by_name(project, storage):
    project.run(storage)
    found = [d.name for d in discover(project.pipeline.dynamic.func, Roots(["proj"]))]
    assert found == ["helpers.offset"]  # relative to the root "proj"
    project.edit("helpers", "return x + 100", "return x + 200")
    assert project.run(storage) == ["dynamic"]


def test_comments_docstrings_and_formatting_recompute_nothing(project, storage):
    project.run(storage)
    project.edit("helpers", '"""Multiply by the scale."""', '"""Scale x up."""  # a comment')
    project.edit("helpers", "return x * SCALE", "return  x*SCALE   # same logic")
    assert project.run(storage) == []


def test_changing_a_constant_recomputes_the_ops_that_read_it(project, storage):
    project.run(storage)
    project.edit("helpers", "SCALE = 10", "SCALE = 5")
    assert project.run(storage) == ["compute"]


def test_unrelated_helpers_do_not_count(project, storage):
    project.run(storage)
    project.edit("helpers", "return x - 1", "return x - 100")
    assert project.run(storage) == []


def test_versions_diff_and_stale_calls(project, storage):
    project.run(storage)
    old = storage.version_of(project.pipeline.compute)
    project.edit("helpers", "return x * SCALE", "return x * SCALE * 2")
    project.run(storage)
    compute = project.pipeline.compute
    table = storage.versions(compute)
    assert len(table) == 2 and table["is_current"].sum() == 1
    assert table["dependencies"].iloc[0] == ["helpers.SCALE", "helpers.scale"]  # relative to the root
    new = table[table["is_current"]]["version"].iloc[0]
    diff = storage.diff(compute, old, new)
    assert "-    return x * SCALE\n" in diff and "+    return x * SCALE * 2\n" in diff
    stale = storage.stale_calls()
    assert [(c.op, c.version) for c in stale] == [("compute", old)]
    storage.drop_calls(stale)
    assert storage.stale_calls() == []


def test_without_deps_path_helpers_do_not_count(project, tmp_path):
    storage = Storage(db_path=tmp_path / "plain.db")
    project.run(storage)
    project.edit("helpers", "return x * SCALE", "return x * SCALE * 2")
    assert project.run(storage) == []


def test_pinned_versions_ignore_dependencies(project, storage):
    from memostore import op

    @op(version="7")
    def pinned(x):
        return project.pipeline.helpers.scale(x)

    assert storage.version_of(pinned) == "7"


MAIN_SCRIPT = '''
import sys
from memostore import Storage, op

FACTOR = {factor}


def helper(x):
    return x * FACTOR


@op
def work(x):
    print("computing")
    return helper(x)


with Storage(db_path=sys.argv[1], deps_path="__main__"):
    work(2)
'''


@pytest.mark.parametrize("second_factor, recomputes", [(3, False), (4, True)])
def test_deps_path_main_tracks_a_script(tmp_path, second_factor, recomputes):
    from helpers import REPO_ROOT

    db_path = str(tmp_path / "main.db")

    def run_script(factor):
        script = tmp_path / "script.py"
        script.write_text(MAIN_SCRIPT.format(factor=factor))
        result = subprocess.run([sys.executable, str(script), db_path], capture_output=True, text=True,
                                env={"PYTHONPATH": str(REPO_ROOT)})
        assert result.returncode == 0, result.stderr
        return "computing" in result.stdout

    assert run_script(3)
    assert run_script(second_factor) is recomputes


def test_drop_stale_uses_the_version_with_dependencies(project, storage):
    project.run(storage)
    project.edit("helpers", "return x * SCALE", "return x * SCALE * 2")
    project.run(storage)
    dropped = storage.drop_stale(project.pipeline.compute)
    assert len(dropped) == 1 and dropped[0].version != storage.version_of(project.pipeline.compute)
    project.pipeline.RUNS.clear()
    assert project.run(storage) == []  # the current version's call is still there


def test_module_attributes_set_by_the_import_system_are_not_dependencies(tmp_path):
    # An op that reads __file__ or __name__ gets the same version wherever the checkout lies
    # and however the module was run.
    source = "from memostore import op\n\n@op\ndef where():\n    return __file__, __name__\n"
    found = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"located_{folder}.py").write_text(source)
        sys.path.insert(0, str(tmp_path / folder))
        try:
            module = importlib.import_module(f"located_{folder}")
        finally:
            sys.path.remove(str(tmp_path / folder))
        assert discover(module.where.func, Roots((f"located_{folder}",))) == []
        found.append(Storage(deps_path=f"located_{folder}").version_of(module.where))
    assert found[0] == found[1]
