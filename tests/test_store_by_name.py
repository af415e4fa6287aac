"""Reading a store by op name: storage.ops(), storage.source(), versions and diff."""

from __future__ import annotations

import pytest

from helpers import run_python
from memostore import NotStoredError, Storage, op


@op
def square(x):
    return x * x


@op
def half_of(x):
    return x / 2


def test_ops_lists_every_stored_op_with_counts(storage):
    assert storage.ops().empty
    with storage:
        for i in range(3):
            half_of(square(i))
    table = storage.ops().set_index("op")
    assert list(table.index) == ["half_of", "square"]
    assert table.loc["square", "calls"] == 3 and table.loc["square", "versions"] == 1
    assert table.loc["square", "latest_version"] == storage.versions(square)["version"].iloc[0]
    assert table.loc["half_of", "first_used"] <= table.loc["half_of", "last_used"]


def test_source_by_op_and_by_name(storage):
    with storage:
        square(2)
    assert storage.source(square) == storage.source("square")
    assert "return x * x" in storage.source("square")
    version = storage.versions("square")["version"].iloc[0]
    assert storage.source("square", version=version[:6]) == storage.source(square)


def test_versions_and_diff_take_a_stored_name(storage):
    with storage:
        square(2)
    by_name = storage.versions("square")
    assert list(by_name["calls"]) == [1]
    columns = ["version", "calls", "is_current"]
    assert by_name[columns].equals(storage.versions(square)[columns])  # a name defined here means that op


def test_unknown_names_and_versions_raise(storage):
    with storage:
        square(2)
    with pytest.raises(NotStoredError, match="no stored version"):
        storage.source("cube")
    with pytest.raises(NotStoredError, match="0 stored versions matching 'ffff'"):
        storage.source("square", version="ffff")


def test_ops_reads_a_reopened_file_without_the_code(db_path):
    with Storage(db_path=db_path):
        square(3)
    table = Storage(db_path=db_path).ops()
    assert list(table["op"]) == ["square"]


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
        storage.source_history("square")


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
