"""Reading a store by op name: storage.ops(), storage.source(), versions and diff."""

from __future__ import annotations

import pytest

from memostore import NewArgDefault, NotStoredError, Storage, UnknownOpError, op

from helpers import run_python


@op
def squared(x):
    return x * x


@op
def half_of(x):
    return x / 2


def test_ops_lists_every_stored_op_with_counts(storage):
    assert storage.ops().empty
    with storage:
        for i in range(3):
            half_of(squared(i))
    table = storage.ops().set_index("op")
    assert list(table.index) == ["half_of", "squared"]
    assert table.loc["squared", "calls"] == 3 and table.loc["squared", "versions"] == 1
    assert table.loc["squared", "latest_version"] == storage.versions(squared)["version"].iloc[0]
    assert table.loc["half_of", "first_used"] <= table.loc["half_of", "last_used"]


def test_source_by_op_and_by_name(storage):
    with storage:
        squared(2)
    assert storage.source(squared) == storage.source("squared")
    assert "return x * x" in storage.source("squared")
    version = storage.versions("squared")["version"].iloc[0]
    assert storage.source("squared", version=version[:6]) == storage.source(squared)


def test_the_stored_source_is_the_text_that_ran_when_a_parameter_keeps_the_version(storage):
    @op(name="grown_by_name")
    def train(x):
        return x * 1

    with storage:
        train(1)
    version = storage.version_of(train)

    @op(name="grown_by_name")
    def train(x, n=NewArgDefault(1)):  # noqa: F811 - the same version, grown
        return x * n

    with storage:
        train(1, n=5)
    assert storage.version_of(train) == version
    for asked in (train, "grown_by_name"):
        assert "def train(x, n=NewArgDefault(1)):" in storage.source(asked)
    history = storage.source_history("grown_by_name")
    assert history["version"].tolist() == [version] and history["calls"].tolist() == [2]
    assert "return x * n" in history["source"][0]


def test_versions_and_diff_take_a_stored_name(storage):
    with storage:
        squared(2)
    by_name = storage.versions("squared")
    assert list(by_name["calls"]) == [1]
    columns = ["version", "calls", "is_current"]
    assert by_name[columns].equals(storage.versions(squared)[columns])  # a name defined here means that op


def test_unknown_names_and_versions_raise(storage):
    with storage:
        squared(2)
    with pytest.raises(UnknownOpError, match=r"storage.source\('cube_never_defined'\): no op of that name is "
                                             r"stored; the stored ops are \['squared'\]"):
        storage.source("cube_never_defined")
    with pytest.raises(NotStoredError, match="0 stored versions matching 'ffff'"):
        storage.source("squared", version="ffff")


def test_ops_reads_a_reopened_file_without_the_code(db_path):
    with Storage(db_path=db_path):
        squared(3)
    table = Storage(db_path=db_path).ops()
    assert list(table["op"]) == ["squared"]


def test_source_history_and_drop_version_by_name(tmp_path):
    location = tmp_path / "runs.db"
    for power in (2, 3):
        (tmp_path / "shapes.py").write_text(f"from memostore import op\n\n@op\ndef cube(x):\n    return x ** {power}\n"
                                            f"\n@op\ndef neg(x):\n    return -x\n")
        run_python(f"""
            from memostore import Storage
            from shapes import cube, neg
            with Storage(db_path={str(location)!r}):
                for i in range(3):
                    neg(cube(i))
            """, cwd=tmp_path)
    storage = Storage(db_path=location)
    history = storage.source_history("cube")
    assert list(history["calls"]) == [3, 3]
    assert "x ** 2" in history["source"].iloc[0] and "x ** 3" in history["source"].iloc[1]
    dropped = storage.drop_version("cube", history["version"].iloc[0][:10])
    assert sorted(c.op for c in dropped) == ["cube"] * 3 + ["neg"] * 3
    assert list(storage.source_history("cube")["calls"]) == [0, 3]
    with pytest.raises(NotStoredError, match="no stored version"):
        storage.source_history("squared")


def test_every_method_taking_an_op_name_lists_the_stored_ops_for_an_unknown_one(storage):
    with storage:
        squared(2)
    calls = {"calls_of": (), "source": (), "source_history": (), "versions": (), "diff": ("aa", "bb"),
             "failures": (), "drop_version": ("aa",), "version_of": ()}
    for method, arguments in calls.items():
        with pytest.raises(UnknownOpError, match=rf"storage.{method}\('squard'\): no op of that name is stored; "
                                                 r"the stored ops are \['squared'\]"):
            getattr(storage, method)("squard", *arguments)


def test_version_of_a_name_is_the_current_version_of_the_op_defined_here(tmp_path):
    location = tmp_path / "runs.db"
    with Storage(db_path=location) as storage:
        squared(2)
        assert storage.version_of("squared") == storage.version_of(squared)
    run_python(f"""
        from memostore import Storage, op
        @op
        def cube_elsewhere(x):
            return x ** 3
        with Storage(db_path={str(location)!r}):
            cube_elsewhere(2)
        """, cwd=tmp_path)
    with pytest.raises(UnknownOpError, match=r"version_of\('cube_elsewhere'\): the op is stored but not defined "
                                             "in this process; import the module that defines it"):
        storage.version_of("cube_elsewhere")
    assert storage.calls_of(squared) and storage.calls_of("cube_elsewhere")  # a stored name needs no code


def test_drop_version_of_an_op_without_stored_versions_says_none_is_stored(storage):
    with pytest.raises(NotStoredError, match=r"has 0 stored versions matching 'abc'; stored: none \(the op has "
                                             r"not been called with this store\)"):
        storage.drop_version(half_of, "abc")


def test_vacuum_gives_back_the_space_of_dropped_calls(db_path):
    storage = Storage(db_path=db_path)
    with storage:
        for i in range(5_000):
            half_of(i * 1000.0 + 0.5)
    storage.drop_calls(list(storage.cf(half_of).df()["half_of"]))
    storage.cleanup_refs()
    before = db_path.stat().st_size
    storage.vacuum()
    assert db_path.stat().st_size < before / 4


@pytest.fixture(params=["file", "postgres"])
def shared_location(request, tmp_path):
    """A store another process can write: Storage's arguments for a SQLite file or a PostgreSQL URL."""
    if request.param == "file":
        return {"db_path": str(tmp_path / "runs.db")}
    return {"db_url": request.getfixturevalue("postgres_url")}


def test_versions_of_an_op_not_defined_here_do_not_say_which_is_current(tmp_path, shared_location):
    for body in ("x + 1", "1 + x"):
        run_python(f"""
            from memostore import Storage, op
            @op
            def bump_elsewhere(x):
                return {body}
            with Storage(**{shared_location!r}):
                bump_elsewhere(1)
            """, cwd=tmp_path)
    storage = Storage(**shared_location)
    with storage:
        squared(2)
    unknown = storage.versions("bump_elsewhere")
    assert list(unknown["calls"]) == [1, 1] and str(unknown["is_current"].dtype) == "boolean"
    assert unknown["is_current"].isna().all() and "<NA>" in repr(unknown)  # unknown, not False: no code here
    known = storage.versions("squared")  # a name defined here means that op: its current version is known
    assert known["is_current"].tolist() == [True] and str(known["is_current"].dtype) == "boolean"
    storage.close()
