"""Upgrading stores of older schema versions: a store written by the first release serves everything after."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from memostore import SchemaVersionError, Storage, upgrade_store
from memostore.backends import schema
from memostore.backends.migrations import HEAD_REVISION, script_directory

FIXTURE = Path(__file__).parent.parent / "fixtures" / "v1"
sys.path.insert(0, str(FIXTURE))

import make_store  # noqa: E402  (the fixture's own module, from its directory)
import v1_ops  # noqa: E402

EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
OPS = {name: getattr(v1_ops, name) for name in ("add", "double", "split", "big", "table", "odd_names")}


def copy_fixture(tmp_path: Path) -> tuple[Path, Path]:
    """The v1 store and its blobs, copied where the test may change them."""
    path = tmp_path / "store.db"
    shutil.copy(FIXTURE / "store.db", path)
    shutil.copytree(FIXTURE / "store.db-blobs", tmp_path / "blobs")
    return path, tmp_path / "blobs"


def check_serves_everything(storage: Storage) -> None:
    """Every value loads, every old call is a hit, failures stay, frames give the same tables."""
    for label, stored in EXPECTED["refs"].items():
        assert repr(storage.unwrap(storage.load_ref(stored["hid"]))) == stored["repr"], label
    assert storage._store.counts() == EXPECTED["counts"]
    # Frames give the same tables (before the calls below carry old calls over to today's versions).
    for name, rows in EXPECTED["frames"].items():
        back = name in ("double", "odd_names")
        assert make_store.frame_rows(storage, getattr(v1_ops, name), back=back) == rows, name
    with storage:
        for name, argument_lists in EXPECTED["hits"].items():
            for arguments in argument_lists:
                if name == "double":  # on add's output, as stored: a plain 1 would be a new history
                    arguments = [OPS["add"]((arguments[0] - 1) // 2, (arguments[0] + 1) // 2)]
                OPS[name](*arguments)
        described = v1_ops.describe([1, 2, 3], alpha=1, **{"odd\x1fkey": 2, "ünï": 3})
    # No op ran: every call was found. (Calls stored under the first release's version formula are
    # moved to today's version, with the calls downstream of them: one call per computation still.)
    assert storage.last_run is not None and storage.last_run.computed == 0, "an old call was computed again"
    assert storage._store.counts() == EXPECTED["counts"]
    # Its history id follows today's op version; its value is the stored one.
    assert repr(storage.unwrap(described)) == EXPECTED["refs"]["describe"]["repr"]
    assert sorted(storage.failures(v1_ops.fragile)["error_message"]) == EXPECTED["failures"]


def stored_schema_version(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT value FROM memostore_meta WHERE key = 'schema_version'").fetchone()[0]


def test_a_v1_sqlite_store_is_upgraded_when_opened_and_serves_everything(tmp_path):
    path, blobs = copy_fixture(tmp_path)
    storage = Storage(db_path=path, blob_dir=blobs, blob_threshold_bytes=4096)
    copy = tmp_path / "store.db.schema-v1.bak"
    assert stored_schema_version(copy) == "1" and stored_schema_version(path) == str(schema.SCHEMA_VERSION)
    check_serves_everything(storage)
    storage.close()
    assert upgrade_store(db_path=path) == []  # already current


def test_a_v1_postgres_store_is_refused_until_upgraded_then_serves_everything(tmp_path, postgres_url):
    path, blobs = copy_fixture(tmp_path)
    copy_tables(path, postgres_url)
    with pytest.raises(SchemaVersionError, match="schema version 1.*memostore upgrade URL"):
        Storage(db_url=postgres_url, blob_dir=blobs)
    assert upgrade_store(db_url=postgres_url) == ["v1", "v2", "v3"]
    storage = Storage(db_url=postgres_url, blob_dir=blobs, blob_threshold_bytes=4096)
    check_serves_everything(storage)
    storage.close()


def copy_tables(sqlite_path: Path, postgres_url: str) -> None:
    """The v1 tables of a SQLite store, as they are (same columns, same rows), on PostgreSQL."""
    from sqlalchemy import BLOB, LargeBinary, MetaData, create_engine, insert, select

    source = create_engine(f"sqlite:///{sqlite_path}")
    tables = MetaData()
    tables.reflect(source)
    for table in tables.tables.values():
        for column in table.columns:
            if isinstance(column.type, BLOB):
                column.type = LargeBinary()
    target = create_engine(postgres_url)
    with source.connect() as reading, target.begin() as writing:
        tables.create_all(writing)
        for table in tables.sorted_tables:
            rows = [row._asdict() for row in reading.execute(select(table))]
            if rows:
                writing.execute(insert(table), rows)
    source.dispose()
    target.dispose()


def test_the_head_revision_is_the_last_migration():
    _, script = script_directory()
    assert script.get_current_head() == HEAD_REVISION


def test_a_new_store_needs_no_upgrade(tmp_path):
    Storage(db_path=tmp_path / "new.db").close()
    assert upgrade_store(db_path=tmp_path / "new.db") == []
    assert not list(tmp_path.glob("*.bak"))


OPEN_STORE = "import sys; from memostore import Storage; print(Storage(db_path=sys.argv[1])._store.counts()['calls'])"


def test_processes_opening_a_v1_store_at_once_upgrade_it_once(tmp_path):
    import subprocess

    from helpers import REPO_ROOT

    path, _ = copy_fixture(tmp_path)
    openers = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(path)], env={"PYTHONPATH": str(REPO_ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for process in openers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert int(out) == EXPECTED["counts"]["calls"]
    assert [p.name for p in tmp_path.glob("*.bak*")] == ["store.db.schema-v1.bak"]
