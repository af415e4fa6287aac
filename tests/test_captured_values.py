"""What an op reads besides its arguments counts in its version: the values a closure captured (with
or without deps_path, in worker processes too), and module-level containers under deps_path."""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memostore import OpDefinitionError, Storage, UntrackedValueWarning, content_id, op
from memostore.deps import captured

from helpers import REPO_ROOT


def make_scaler(k):
    @op
    def scaler(x):
        return x * k

    return scaler


def test_closures_with_different_captured_values_do_not_share_calls(storage):
    double, triple = make_scaler(2), make_scaler(3)
    assert storage.version_of(double) != storage.version_of(triple)
    with storage:
        a, b = double(10), triple(10)
    assert storage.unwrap([a, b]) == [20, 30]
    with storage:  # both stay usable, and each finds its own call
        again = [make_scaler(2)(10), make_scaler(3)(10)]
    assert [r.hid for r in again] == [a.hid, b.hid]
    assert storage.last_run.computed == 0
    table = storage.versions("scaler")
    assert len(table) == 2 and table["dependencies"].tolist() == [["k"], ["k"]]
    old, new = storage.version_of(double), storage.version_of(triple)
    assert "-k = 2\n" in storage.diff("scaler", old, new) and "+k = 3\n" in storage.diff("scaler", old, new)


@given(st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=4),
                 st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=3)),
       st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=4)))
def test_captured_plain_values_make_equal_versions_exactly_when_their_contents_are_equal(a, b):
    assert (make_scaler(a).version == make_scaler(b).version) == (content_id(a) == content_id(b))


def test_a_value_that_cannot_be_hashed_is_refused_naming_the_op_and_the_variable():
    lock = threading.Lock()
    with pytest.raises(OpDefinitionError, match=r"op 'locked' captured 'lock'.*as an argument"):
        @op
        def locked(x):
            with lock:
                return x


def make_countdown(step):
    @op
    def countdown(n):  # reads itself: its cell is unset while @op runs, then holds the op
        return [] if n <= 0 else [n] + countdown(n - step)

    return countdown


def test_a_recursive_inner_op_captures_itself_and_its_values(storage):
    with storage:
        ones, twos = make_countdown(1)(4), make_countdown(2)(4)
    assert storage.unwrap([ones, twos]) == [[4, 3, 2, 1], [4, 2]]
    assert [d.name for d in captured(make_countdown(1).func)] == ["step"]


def make_with_helper(k, defined_after):
    def early(x):
        return x + k

    @op
    def outer(x):
        return late(x) if defined_after else early(x)

    def late(x):  # unset while @op runs: read at the first version, then kept
        return x * k

    return outer


def test_captured_functions_count_by_code_and_by_what_they_captured(storage):
    with storage:
        results = [make_with_helper(k, after)(10) for k in (2, 3) for after in (False, True)]
    assert storage.unwrap(results) == [12, 20, 13, 30]
    names = [d.name for d in captured(make_with_helper(2, True).func)]
    assert names == ["defined_after", "early", "early.k", "late", "late.k"]


def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def times(factor):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(x):
            return func(x) * factor

        return wrapper

    return decorate


def test_decorators_under_op_count_by_the_values_they_captured_not_the_function_they_wrap(storage):
    @op
    @logged
    def plain(x):
        return x + 1

    assert captured(plain.func) == []  # the wrapped function's code is the op's own

    def scaled(factor):
        @op
        @times(factor)
        def grow(x):
            return x + 1

        return grow

    assert [d.name for d in captured(scaled(2).func)] == ["factor"]
    with storage:
        results = [plain(1), scaled(2)(1), scaled(3)(1)]
    assert storage.unwrap(results) == [2, 4, 6]


def make_pipeline(k, kind):
    inner = make_scaler(k)

    class Local:
        offset = 1

    @op
    def pipeline(x):
        return kind(inner(x) + Local.offset)

    return pipeline


def test_captured_ops_and_classes_count_by_code_and_by_what_they_captured(storage):
    with storage:
        results = [make_pipeline(2, int)(10), make_pipeline(3, int)(10), make_pipeline(2, float)(10)]
    assert storage.unwrap(results) == [21, 31, 21.0]
    assert type(storage.unwrap(results[2])) is float
    found = {d.name: d.kind for d in captured(make_pipeline(2, int).func)}
    assert found == {"Local": "class", "inner": "function", "inner.k": "captured", "kind": "captured"}


class Model:
    def __init__(self, weight):
        self.weight = weight

    def predictor(self):
        @op
        def predict(x):
            return x * self.weight

        return predict


def test_a_captured_self_counts_by_its_content(storage):
    with storage:
        results = [Model(2).predictor()(5), Model(3).predictor()(5), Model(2).predictor()(5)]
    assert storage.unwrap(results) == [10, 15, 10]
    assert results[0].hid == results[2].hid


def test_a_captured_callable_object_counts_by_its_type_not_its_state():
    class Recorder:
        def __init__(self):
            self.seen = []

        def __call__(self, x):
            self.seen.append(x)

    record = Recorder()

    def define():
        @op
        def work(x):
            record(x)
            return x

        return work

    first = define()
    record(1)  # its state changes; what the op computes does not
    assert define().version == first.version


def test_threads_and_processes_of_storage_map_keep_closures_apart(tmp_path):
    storage = Storage(db_path=tmp_path / "map.db")
    for executor in ("threads", "processes"):
        with storage:
            results = [storage.map(make_scaler(k), [{"x": 10}, {"x": 11}], executor=executor, n_jobs=2)
                       for k in (4, 5)]
        assert storage.unwrap(results) == [[40, 44], [50, 55]]


def run_script(tmp_path, text, *args, env=None):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(text))
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'tests'}", **(env or {})})
    assert result.returncode == 0, result.stderr
    return result


FACTORY_SCRIPT = '''
import sys
from memostore import Storage, op

def make_scaler(k):
    @op
    def scaler(x):
        return x * k
    return scaler

storage = Storage(db_path="factory.db", deps_path=sys.argv[1] if len(sys.argv) > 1 else None)
with storage:
    a, b = make_scaler(2)(10), make_scaler(3)(10)
print(storage.unwrap(a), storage.unwrap(b))
'''


@pytest.mark.parametrize("deps_path", [[], ["__main__"]], ids=["no deps_path", "deps_path __main__"])
def test_a_script_keeps_closures_apart_across_processes(tmp_path, deps_path):
    assert run_script(tmp_path, FACTORY_SCRIPT, *deps_path).stdout.split() == ["20", "30"]
    assert run_script(tmp_path, FACTORY_SCRIPT, *deps_path).stdout.split() == ["20", "30"]


KINDS_SCRIPT = '''
import os
import numpy as np
from memostore import Storage, op

V = int(os.environ["V"])
L, D, S, A, T, NESTED = [V], {"v": V}, {V}, np.array([V]), (V,), ({"v": [V]},)
RUNS = []


@op
def use_t(x): return x * T[0]
@op
def use_l(x): return x * L[0]
@op
def use_d(x): return x * D["v"]
@op
def use_s(x): return x * max(S)
@op
def use_a(x): return x * int(A[0])
@op
def use_nested(x): return x * NESTED[0]["v"][0]
@op
def logs(x):
    RUNS.append(x)  # a list the op writes to is state, not a constant: it never changes the version
    return x


storage = Storage(db_path="kinds.db", deps_path="__main__")
with storage:
    print(sorted((f.name, storage.unwrap(f(10))) for f in [use_t, use_l, use_d, use_s, use_a, use_nested]))
    logs(1)
print(storage.last_run.computed)
'''


def test_module_level_containers_are_constants_under_deps_path(tmp_path):
    expected = [("use_a", 20), ("use_d", 20), ("use_l", 20), ("use_nested", 20), ("use_s", 20), ("use_t", 20)]
    assert run_script(tmp_path, KINDS_SCRIPT, env={"V": "2"}).stdout.splitlines() == [str(expected), "7"]
    changed = [(name, 30) for name, _ in expected]
    # every op reading V recomputes; logs, which only writes RUNS, is a hit
    assert run_script(tmp_path, KINDS_SCRIPT, env={"V": "3"}).stdout.splitlines() == [str(changed), "6"]
    assert run_script(tmp_path, KINDS_SCRIPT, env={"V": "3"}).stdout.splitlines() == [str(changed), "0"]


UNTRACKED_MODULE = '''
import threading
from memostore import op

LOCK = threading.Lock()
CONFIG = {"rate": 0.5}


@op
def guarded(x):
    with LOCK:
        return x * CONFIG["rate"]
'''


def test_a_global_that_is_neither_code_nor_data_warns_once_per_op(tmp_path, monkeypatch):
    (tmp_path / "untracked_globals.py").write_text(UNTRACKED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("untracked_globals")
    storage = Storage(deps_path="untracked_globals")
    with pytest.warns(UntrackedValueWarning, match=r"op 'guarded' reads the global untracked_globals.LOCK.*argument"):
        version = storage.version_of(module.guarded)
    assert storage.versions(module.guarded)["dependencies"].tolist() == [["CONFIG"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with storage:  # a new block versions the op again: no second warning
            assert storage.unwrap(module.guarded(4)) == 2.0
        assert storage.version_of(module.guarded) == version


def call_with_ten(scaler):
    return scaler(10)


def test_ops_sent_to_a_process_pool_from_a_block_keep_closures_apart(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    storage = Storage(db_path=tmp_path / "pool.db")
    with storage, ProcessPoolExecutor(max_workers=1) as pool:  # one worker rebuilds both ops
        results = list(pool.map(call_with_ten, [make_scaler(2), make_scaler(3)]))
    assert storage.unwrap(results) == [20, 30]
    with storage:
        assert storage.unwrap([make_scaler(2)(10), make_scaler(3)(10)]) == [20, 30]
    assert storage.last_run.computed == 0  # the workers stored each under its own version
