"""A storage never takes over a file that is not a memostore store, and can insist on an existing one."""

import sqlite3

import pytest

from memostore import CorruptStoreError, Storage, StoreLocationError, op

from helpers import run_python


@op
def shout(text):
    return text.upper()


def test_another_applications_database_is_refused(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    with pytest.raises(StoreLocationError, match=r"another application's SQLite database.*customers.*alongside"):
        Storage(db_path=path)
    with sqlite3.connect(path) as connection:  # untouched
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_alongside_adds_memostore_beside_the_other_tables(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    storage = Storage(db_path=path, create="alongside")
    with storage:
        shout("hi")
    assert "calls=1" in repr(Storage(db_path=path))  # now a memostore store: no opt-in needed again


def test_a_file_that_is_no_database_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some text that is long enough to have a header" * 10)
    with pytest.raises(CorruptStoreError, match="not a SQLite database"):
        Storage(db_path=path)
    assert path.read_text().startswith("not a database")


def test_create_false_opens_an_existing_store_or_fails(tmp_path):
    path = tmp_path / "runs.db"
    with pytest.raises(StoreLocationError, match="no store at.*create=False"):
        Storage(db_path=path, create=False)
    assert not path.exists()
    with Storage(db_path=path):
        shout("hi")
    with Storage(db_path=path, create=False):
        assert not shout("hi").in_memory


def test_create_false_refuses_a_file_that_holds_no_store(tmp_path):
    empty_database = tmp_path / "empty.db"
    with sqlite3.connect(empty_database) as connection:
        connection.execute("PRAGMA user_version = 1")  # a valid SQLite file without any table
    with pytest.raises(StoreLocationError, match=r"SQLite database without tables.*holds no memostore store"):
        Storage(db_path=empty_database, create=False)
    empty_file = tmp_path / "zero.db"
    empty_file.touch()
    with pytest.raises(StoreLocationError, match=r"empty file, which holds no memostore store.*create=False"):
        Storage(db_path=empty_file, create=False)
    with sqlite3.connect(empty_database) as connection:  # nothing was created in it
        assert list(connection.execute("SELECT name FROM sqlite_master")) == []


def test_create_false_opens_a_store_whose_schema_is_still_in_its_log(tmp_path):
    # A process killed before its connection closed: the store's tables exist only in runs.db-wal.
    run_python("""
        import os
        from memostore import Storage, op
        @op
        def shout(text):
            return text.upper()
        with Storage(db_path="runs.db"):
            shout("hi")
        os._exit(0)
    """, cwd=tmp_path)
    assert (tmp_path / "runs.db-wal").stat().st_size > 0
    with sqlite3.connect(f"file:{tmp_path / 'runs.db'}?mode=ro&nolock=1&immutable=1", uri=True) as connection:
        assert list(connection.execute("SELECT name FROM sqlite_master")) == []  # the file alone: no schema
    storage = Storage(db_path=tmp_path / "runs.db", create=False)
    assert "calls=1" in repr(storage)
    storage.close()
