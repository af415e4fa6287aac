"""An op name belongs to one function: two functions never share stored calls."""

import gc
import importlib
import sys

import pytest

from memostore import OpDefinitionError, OpNameConflictError, Storage, op


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Import ``name`` from a module file written with ``source`` (a fresh import each time)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def load(module_name, source):
        (tmp_path / f"{module_name}.py").write_text(source)
        sys.modules.pop(module_name, None)
        importlib.invalidate_caches()
        written.append(module_name)
        return importlib.import_module(module_name)

    yield load
    for module_name in written:
        sys.modules.pop(module_name, None)


PREPROCESS = "from memostore import op\n\n@op\ndef preprocess(x):\n    return x {}\n"


def test_an_op_records_its_module_and_qualname(modules):
    mod = modules("ident_a", PREPROCESS.format("+ 1"))
    assert (mod.preprocess.module, mod.preprocess.qualname, mod.preprocess.name) == \
        ("ident_a", "preprocess", "preprocess")


def test_two_functions_under_one_name_are_refused_in_one_storage(storage, modules):
    first = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    second = modules("ident_b", PREPROCESS.format("* 2")).preprocess
    with storage:
        assert storage.unwrap(first(3)) == 4
        with pytest.raises(OpNameConflictError, match=r"ident_a\.preprocess.*ident_b\.preprocess.*@op\(name="):
            second(3)


def test_two_live_functions_make_stale_calls_refuse_to_guess(storage, modules):
    first = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    second = modules("ident_b", PREPROCESS.format("* 2")).preprocess
    with storage:
        first(3)
    with pytest.raises(OpNameConflictError, match="ident_a.preprocess, ident_b.preprocess"):
        storage.stale_calls()
    assert second(3) == 6  # outside a block, each is its own plain function


def test_redefining_the_same_function_keeps_its_calls(storage, modules):
    old = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    with storage:
        old(3)
    del old
    new = modules("ident_a", PREPROCESS.format("+ 1")).preprocess  # a notebook cell run again
    with storage:
        assert not new(3).in_memory  # a hit
        edited = modules("ident_a", PREPROCESS.format("+ 2")).preprocess  # the cell, edited
        assert storage.unwrap(edited(3)) == 5
    assert [c.version for c in storage.stale_calls()] == [new.version]


def test_an_explicit_name_adopts_the_calls_of_a_moved_function(storage, modules):
    old = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    with storage:
        old(3)
    del old
    sys.modules.pop("ident_a")  # the module is gone: its function moved to ident_b
    gc.collect()
    moved = modules("ident_b", PREPROCESS.format("+ 1").replace("@op", "@op(name='preprocess')")).preprocess
    with storage:
        assert not moved(3).in_memory


def test_a_second_live_function_cannot_take_a_name_even_explicitly(storage, modules):
    first = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    other = modules("ident_b", PREPROCESS.format("* 2").replace("@op", "@op(name='preprocess')")).preprocess
    with storage:
        first(3)
        with pytest.raises(OpNameConflictError, match="ident_a.preprocess"):
            other(3)


def test_a_lambda_needs_a_name():
    with pytest.raises(OpDefinitionError, match="lambda.*name="):
        op(lambda x: x * 2)
    double, triple = op(lambda x: x * 2, name="double"), op(lambda x: x * 3, name="triple")
    storage = Storage()
    with storage:
        assert storage.unwrap([double(3), triple(3)]) == [6, 9]


def test_the_store_remembers_which_function_holds_a_name_across_sessions(tmp_path, modules):
    first = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    with Storage(db_path=tmp_path / "runs.db"):
        first(3)
    second = modules("ident_b", PREPROCESS.format("* 2")).preprocess
    later = Storage(db_path=tmp_path / "runs.db")  # another session: only the store knows ident_a's calls
    with pytest.raises(OpNameConflictError, match=r"ident_a\.preprocess.*ident_b\.preprocess"):
        with later:
            second(3)


def test_reading_a_store_by_a_name_two_live_functions_share_needs_neither(storage, modules):
    first = modules("ident_a", PREPROCESS.format("+ 1")).preprocess
    with storage:
        first(1)
    modules("ident_b", PREPROCESS.format("* 2"))  # another live function under the same name
    assert len(storage.cf("preprocess").df()) == 1  # the stored calls, read by name
    assert list(storage.versions("preprocess")["calls"]) == [1]
    with pytest.raises(OpNameConflictError):
        storage.drop_stale("preprocess")  # needs the live op: which one is ambiguous
