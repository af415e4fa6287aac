"""Creating a store, checking it on open, and upgrading it with Alembic.

Each schema version is an Alembic revision in ``versions/`` (``v1``: the
first release's tables; ``v2``: integer keys; ``v3``: runs). A new store gets the current
tables and is stamped with the head revision. A store of an older version:

- in a SQLite file, is upgraded when opened, after a copy of it is kept
  beside it (``runs.db`` -> ``runs.db.schema-v1.bak``, taken with SQLite's
  backup API under the write lock, so no writer slips in between);
- on PostgreSQL, is refused until someone upgrades it on purpose
  (``upgrade(database)``, behind ``memostore.upgrade_store``), since other
  machines may still run the release that wrote it.

A store of a newer version, or hashed with a newer format, is refused
untouched. Migrations run under the store's write lock (BEGIN IMMEDIATE on
SQLite, an advisory lock on PostgreSQL), so concurrent openers wait, then
find the store upgraded.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import literal, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from memostore.backends import schema
from memostore.backends.database import LOCK_DEADLINE_S, Database
from memostore.backends.statements import is_lock_contention
from memostore.errors import CorruptStoreError, SchemaVersionError
from memostore.hashing import HASH_FORMAT

HEAD_REVISION = "v3"  # the revision of schema.SCHEMA_VERSION; a test checks it is Alembic's head
VERSIONS_DIR = Path(__file__).parent / "versions"
_ADVISORY_LOCK_ID = 0x6D656D6F  # "memo": serializes creating and upgrading a PostgreSQL store


def open_schema(database: Database) -> None:
    """Create the tables of a new store, or check (and on SQLite upgrade) an existing one."""
    meta = read_meta(database)
    if not meta:
        database.run(lambda cursor: _create(database, cursor))
        meta = read_meta(database)
    version = check_compatible(meta, database.url)
    if version == schema.SCHEMA_VERSION:
        return
    if database.read_only:
        raise SchemaVersionError(
            f"the store at {_shown(database.url)} has schema version {version}, and this memostore reads "
            f"version {schema.SCHEMA_VERSION}: a read-only view cannot upgrade it; open it once for "
            "writing (or run `memostore upgrade DB_OR_URL`) first")
    if not database.is_sqlite:
        raise SchemaVersionError(
            f"the store at {_shown(database.url)} has schema version {version}, and this memostore reads "
            f"version {schema.SCHEMA_VERSION}: upgrade it once with `memostore upgrade URL` (or "
            "memostore.upgrade_store(db_url=URL)) after backing it up with pg_dump; until then "
            "open it with the memostore release that wrote it")
    upgrade(database)


def read_meta(database: Database) -> dict[str, str]:
    """The store's settings (schema version, hash format...); empty for a store with no tables yet."""
    query = database.statement("meta", lambda: select(schema.meta.c.key, schema.meta.c.value))
    try:
        return {key: value for key, value in database.fetch(query)}
    except CorruptStoreError:
        raise
    except Exception:
        return {}  # no meta table: a new store


def check_compatible(meta: dict[str, str], url: str) -> int:
    """The stored schema version; raises SchemaVersionError for a newer one, a newer hash format,
    or settings that are not numbers."""
    try:
        stored_schema = int(meta.get("schema_version", schema.SCHEMA_VERSION))
        stored_hash = int(meta.get("hash_format", HASH_FORMAT))
    except ValueError:
        raise SchemaVersionError(
            f"the store at {_shown(url)} records schema version {meta.get('schema_version')!r} and hash "
            f"format {meta.get('hash_format')!r}, which are not numbers: its memostore_meta table is damaged "
            "or was not written by memostore; run storage.check() or restore the file from a backup"
        ) from None
    if stored_schema > schema.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store at {_shown(url)} has schema version {stored_schema}, but this memostore "
            f"reads up to version {schema.SCHEMA_VERSION}; upgrade memostore to open it")
    # An older format is read as is: the ids of the values it hashed correctly did not change,
    # and calls on the few values whose ids did (see hashing's docstring) are computed again.
    if stored_hash > HASH_FORMAT:
        raise SchemaVersionError(
            f"the store at {_shown(url)} was hashed with format {stored_hash}, this memostore uses "
            f"format {HASH_FORMAT}; its ids would not match: upgrade memostore to open it")
    return stored_schema


def upgrade(database: Database) -> list[str]:
    """Apply every migration the store lacks; returns the revisions applied (none when current).

    A SQLite file is first copied beside itself (``<file>.schema-v<N>.bak``).
    An empty database gets the current tables.
    """
    if not read_meta(database):
        open_schema(database)
        return []
    deadline = time.monotonic() + LOCK_DEADLINE_S
    while True:
        try:
            applied = _upgrade_locked(database)
            break
        except Exception as err:  # another process upgrades (or writes) right now: wait for it
            if not is_lock_contention(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    if applied and database.file_path is not None:
        database.connection().execute("VACUUM")  # give back the pages of the old tables
    return applied


def _upgrade_locked(database: Database) -> list[str]:
    """The migrations the store lacks, applied under its write lock."""
    from alembic.runtime.environment import EnvironmentContext

    config, script = script_directory()
    applied: list[str] = []
    with _locked(database) as connection:
        version = check_compatible(_meta_of(connection), database.url)
        if version == schema.SCHEMA_VERSION:
            return applied  # another process upgraded it while we waited for the lock
        if database.file_path is not None:
            # Read through another connection: our write lock lets readers in, and
            # nothing is written yet, so it sees what this transaction sees.
            _keep_copy(database.connection(), database.file_path, version)

        def steps(revision: Any, context: Any) -> Any:
            found = script._upgrade_revs(HEAD_REVISION, revision)
            applied.extend(step.revision.revision for step in found)
            return found

        with EnvironmentContext(config, script, fn=steps, destination_rev=HEAD_REVISION) as environment:
            environment.configure(connection=connection, version_table=schema.alembic_version.name,
                                  transactional_ddl=True)
            environment.run_migrations()
    return applied


def script_directory() -> tuple[Any, Any]:
    """Alembic's Config and ScriptDirectory of memostore's migrations."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(VERSIONS_DIR.parent))
    config.set_main_option("version_locations", str(VERSIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config, ScriptDirectory.from_config(config)


def _create(database: Database, cursor: Any) -> None:
    """The current tables, settings and Alembic stamp of a new store (in the caller's transaction)."""
    dialect = database.dialect
    if not database.is_sqlite:
        # Concurrent CREATE IF NOT EXISTS can clash in PostgreSQL's catalog.
        cursor.execute(_compiled(select(_pg_lock()), database))
    for table in schema.metadata.sorted_tables:
        cursor.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in table.indexes:
            cursor.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    settings = [{"key": "schema_version", "value": str(schema.SCHEMA_VERSION)},
                {"key": "hash_format", "value": str(HASH_FORMAT)},
                {"key": "created_at", "value": repr(time.time())}]
    database.executemany(cursor, database.insert(schema.meta, ["key"], ["key", "value"]), settings)
    database.executemany(cursor, database.insert(schema.alembic_version, ["version_num"], ["version_num"]),
                         [{"version_num": HEAD_REVISION}])


@contextlib.contextmanager
def _locked(database: Database) -> Iterator[Connection]:
    """A SQLAlchemy connection in a transaction that holds the store's write lock."""
    with database.engine.connect() as connection:
        if database.is_sqlite:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(select(_pg_lock()))
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def _meta_of(connection: Connection) -> dict[str, str]:
    return {key: value for key, value in connection.execute(select(schema.meta.c.key, schema.meta.c.value))}


def _keep_copy(connection: Any, path: Path, version: int) -> Path:
    """Copy the store, as it is in this transaction, to ``<file>.schema-v<version>.bak`` (or ``.bak.2``...)."""
    import sqlite3

    target = path.with_name(f"{path.name}.schema-v{version}.bak")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.schema-v{version}.bak.{number}")
    copy = sqlite3.connect(str(target))
    try:
        connection.backup(copy)
    finally:
        copy.close()
    return target


def _pg_lock() -> Any:
    from sqlalchemy import func

    return func.pg_advisory_xact_lock(literal(_ADVISORY_LOCK_ID))


def _compiled(statement: Any, database: Database) -> str:
    return str(statement.compile(dialect=database.dialect, compile_kwargs={"literal_binds": True}))


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
