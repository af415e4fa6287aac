"""A storage never takes over a file that is not a memostore store, and can insist on an existing one."""

import sqlite3

import pytest

from memostore import CorruptStoreError, Storage, StoreLocationError, op


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
