"""mandala's spellings and lookups work on memostore: ignore_args, Ref.obj, overflow_dir and
overflow_threshold_MB, deps_path as a Path, get_creators/get_consumers on lists, and the call cache."""

import importlib
import sys

import numpy as np
import pytest

from memostore import OpDefinitionError, Ref, Storage, StorageOptionError, op
from memostore.config import DEFAULT_BLOB_THRESHOLD_BYTES

RUNS: list[int] = []


@op
def named_inc(x):
    RUNS.append(x)
    return x + 1


@op
def named_add(x, y):
    return x + y


# --- @op(ignore_args=...), Ref.obj ---------------------------------------------------


def test_ignore_args_is_ignore(storage):
    @op(ignore_args=["n_jobs"])
    def scaled(x, n_jobs=1):
        return 2 * x

    assert scaled.ignore == frozenset({"n_jobs"})
    with storage:
        first = scaled(3, n_jobs=1)
        again = scaled(3, n_jobs=8)
    assert first.hid == again.hid and storage.unwrap(again) == 6


def test_ignore_and_ignore_args_together_are_refused():
    with pytest.raises(OpDefinitionError, match="give only ignore="):
        @op(ignore=["a"], ignore_args=["b"])
        def both(a, b):
            return a


def test_ref_obj_is_its_value(storage):
    with storage:
        ref = named_inc(1)
    assert ref.obj == ref.value == 2
    with pytest.raises(ValueError, match="unwrap"):
        _ = Ref("c" * 32, "h" * 32).obj


# --- Storage(overflow_dir=..., overflow_threshold_MB=...), deps_path as a Path ----------


@pytest.mark.parametrize("where", ["file", "postgres"])
def test_overflow_dir_and_threshold_are_blob_dir_and_threshold(tmp_path, where, request):
    location = {"db_path": tmp_path / "runs.db"} if where == "file" else {
        "db_url": request.getfixturevalue("postgres_url")}
    storage = Storage(**location, overflow_dir=tmp_path / "big", overflow_threshold_MB=0.5)
    assert storage.config.blob_dir == str((tmp_path / "big").resolve())
    assert storage.config.blob_threshold_bytes == 2**19

    @op
    def ones(n):
        return np.ones(n)

    with storage:
        ones(2**17)  # 1 MiB of float64: over the threshold, into the overflow directory
        ones(4)
    assert len([p for p in (tmp_path / "big").rglob("*") if p.is_file()]) == 1


def test_both_spellings_of_one_option_are_refused(tmp_path):
    with pytest.raises(StorageOptionError, match="give only blob_dir"):
        Storage(blob_dir=tmp_path / "a", overflow_dir=tmp_path / "b")
    with pytest.raises(StorageOptionError, match="give only blob_threshold_bytes"):
        Storage(blob_threshold_bytes=10, overflow_threshold_MB=1)
    assert Storage().config.blob_threshold_bytes == DEFAULT_BLOB_THRESHOLD_BYTES
    with pytest.raises(ValueError, match="db_path or db_url"):
        Storage(db_path=tmp_path / "x.db", db_url="sqlite://")


def test_db_path_memory_is_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = Storage(db_path=":memory:")
    assert storage.config.db_path is None and "in memory" in repr(storage)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "src"
    (root / "modes_pkg").mkdir(parents=True)
    (root / "modes_pkg" / "__init__.py").write_text("")
    (root / "modes_pkg" / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (root / "modes_pkg" / "pipeline.py").write_text(
        "from memostore import op\nfrom modes_pkg.helpers import twice\n\n\n@op\ndef run(x):\n    return twice(x)\n")
    sys.path.insert(0, str(root))
    try:
        yield root / "modes_pkg", importlib.import_module("modes_pkg.pipeline")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("modes_pkg")]:
            del sys.modules[name]


def test_deps_path_takes_a_path(package):
    directory, pipeline = package
    by_path = Storage(deps_path=directory)
    assert by_path.config.deps_path == (str(directory),)
    assert Storage(deps_path=[directory, "other"]).config.deps_path == (str(directory), "other")
    tracked = by_path.version_of(pipeline.run)
    assert tracked == Storage(deps_path=str(directory)).version_of(pipeline.run)
    assert tracked != Storage().version_of(pipeline.run)  # the helper counts


# --- get_creators / get_consumers on lists -------------------------------------------------


def test_creators_and_consumers_of_many_refs(storage):
    with storage:
        xs = [named_inc(i) for i in range(3)]
        total = named_add(xs[0], xs[1])
        other = named_add(xs[1], 10)
    creators = storage.get_creators(xs)
    assert [c.op for c in creators] == ["named_inc"] * 3
    assert {c.hid for c in creators} == {storage.get_ref_creator(x).hid for x in xs}
    assert storage.get_creators([x.hid for x in xs]) == creators  # by ref hids too
    assert storage.get_creators(xs[0]) == [storage.get_ref_creator(xs[0])]  # one ref
    consumers = storage.get_consumers([xs[0], xs[1].hid, xs[2]])
    assert {c.hid for c in consumers} == {storage.get_ref_creator(total).hid, storage.get_ref_creator(other).hid}
    assert len(storage.get_consumers(xs[1])) == 2  # the single form, as before
    assert storage.get_creators([]) == [] and storage.get_consumers(xs[2]) == []
    with storage:
        passed_in = named_add(1, 2)
    assert storage.get_creators(storage.get_ref_creator(passed_in).inputs["x"]) == []
    with pytest.raises(StorageOptionError, match="Refs or ref hids"):
        storage.get_creators([1])


# --- cache_info / clear_cache / preload ---------------------------------------------------------


def test_preload_caches_the_calls_of_ops(storage):
    with storage:
        for i in range(20):
            named_add(named_inc(i), 1)
    store = Storage.from_config(storage.config) if storage.config.db_path or storage.config.db_url else storage
    store.clear_cache()
    assert store.cache_info()["cached_calls"] == 0
    assert store.preload(named_inc) == 20
    assert store.cache_info()["cached_calls"] == 20
    assert store.preload(["named_inc", named_add]) == 40 and store.preload() == 40
    RUNS.clear()
    statements = []
    if store._store.db.is_sqlite:  # SQLite says what it runs: the hits must read nothing
        store._store.db.connection().set_trace_callback(statements.append)
    with store:
        refs = [named_add(named_inc(i), 1) for i in range(20)]
    assert RUNS == [] and store.last_run.hits == 40
    assert not [s for s in statements if "SELECT" in s and "memostore_edges" in s]  # no call lookup
    assert store.unwrap(refs) == [i + 2 for i in range(20)]
    store.clear_cache()
    assert store.cache_info()["cached_calls"] == 0


def test_cache_info_counts_pending_writes(storage):
    with storage:
        named_inc(1)  # a shared store commits an op's first call at once (it was claimed)
        named_inc(5)
        info = storage.cache_info()
    assert info["pending_calls"] >= 1 and info["pending_values"] >= 2 and info["pending_bytes"] > 0
    assert storage.cache_info()["pending_calls"] == 0
    assert set(info) == {"cached_calls", "max_cached_calls", "known_values", "pending_calls", "pending_values",
                         "pending_bytes"}


def test_preload_names_an_unknown_op(storage):
    with pytest.raises(KeyError, match="no op of that name"):
        storage.preload("nope")

