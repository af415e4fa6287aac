"""Schema version 2: integer ids, 16-byte binary hashes, ops, versions and names stored once.

The version-1 tables are renamed aside, the version-2 tables created as they
were when this step was written (not as ``schema.py`` may say later), every
row copied across in a few INSERT ... SELECT statements, and the old tables
dropped; all in the migration's one transaction. Claims (calls being
computed right now) are not carried over: no map survives an upgrade.

Revision ID: v2
Revises: v1
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None

_V1_TABLES = ("values", "refs", "calls", "edges", "claims", "op_versions")


def _row_id() -> Column[int]:
    return Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)


def _id(name: str) -> Column[int]:
    return Column(name, BigInteger().with_variant(Integer(), "sqlite"), nullable=False)


def _create_tables() -> None:
    op.create_table("memostore_ops", _row_id(), Column("name", LargeBinary, nullable=False, unique=True),
                    Column("module", Text), Column("qualname", Text))
    op.create_table("memostore_op_versions", _row_id(), _id("op_id"), Column("version", LargeBinary, nullable=False),
                    Column("source", Text), Column("dependencies", Text),
                    Column("first_used", Float, nullable=False), Column("last_used", Float, nullable=False),
                    UniqueConstraint("op_id", "version", name="memostore_op_versions_key"))
    op.create_table("memostore_names", _row_id(), Column("name", LargeBinary, nullable=False, unique=True))
    op.create_table("memostore_values", _row_id(), Column("cid", LargeBinary(16), nullable=False, unique=True),
                    Column("format", Text, nullable=False), Column("size_bytes", BigInteger, nullable=False),
                    Column("inline_data", LargeBinary))
    op.create_table("memostore_refs", _row_id(), Column("hid", LargeBinary(16), nullable=False, unique=True),
                    Column("cid", LargeBinary(16), nullable=False))
    op.create_table("memostore_calls", _row_id(), Column("hid", LargeBinary(16), nullable=False, unique=True),
                    Column("cid", LargeBinary(16), nullable=False), _id("op_version_id"),
                    Column("status", String(16), nullable=False), Column("multi_output", Boolean, nullable=False),
                    Column("started_at", Float, nullable=False), Column("duration_s", Float, nullable=False),
                    Column("error_type", LargeBinary), Column("error_message", LargeBinary),
                    Column("error_traceback", LargeBinary),
                    Index("memostore_calls_cid", "cid"), Index("memostore_calls_op_version", "op_version_id"))
    id_type = BigInteger().with_variant(Integer(), "sqlite")
    op.create_table("memostore_edges", Column("call_id", id_type, primary_key=True),
                    Column("output", Boolean, primary_key=True), Column("name_id", id_type, primary_key=True),
                    Column("position", Integer, nullable=False), _id("ref_id"),
                    Index("memostore_edges_ref", "ref_id", "output"), sqlite_with_rowid=False)
    op.create_table("memostore_claims", Column("call_hid", LargeBinary(16), primary_key=True),
                    Column("owner", Text, nullable=False), Column("expires_at", Float, nullable=False),
                    Index("memostore_claims_owner", "owner"), sqlite_with_rowid=False)


def _copy_statements(key: str, utf8: str) -> list[str]:
    """INSERT ... SELECT statements from the v1 tables; ``key``/``utf8`` format a hex / text column."""
    def k(column: str) -> str:
        return key.format(column)

    def u(column: str) -> str:
        return utf8.format(column)

    return [
        "INSERT INTO memostore_ops (name) SELECT DISTINCT {} FROM (SELECT op FROM memostore_v1_calls "
        "UNION SELECT op FROM memostore_v1_op_versions) named".format(u("op")),
        "INSERT INTO memostore_op_versions (op_id, version, source, dependencies, first_used, last_used) "
        f"SELECT o.id, {u('v.version')}, v.source, v.dependencies, v.first_used, v.last_used "
        f"FROM memostore_v1_op_versions v JOIN memostore_ops o ON o.name = {u('v.op')}",
        # Versions that ran but were never noted (none should be): keep their calls.
        "INSERT INTO memostore_op_versions (op_id, version, source, dependencies, first_used, last_used) "
        f"SELECT o.id, {u('c.version')}, NULL, NULL, min(c.started_at), max(c.started_at) "
        f"FROM memostore_v1_calls c JOIN memostore_ops o ON o.name = {u('c.op')} WHERE NOT EXISTS "
        "(SELECT 1 FROM memostore_v1_op_versions v WHERE v.op = c.op AND v.version = c.version) "
        "GROUP BY o.id, c.version",
        f"INSERT INTO memostore_names (name) SELECT DISTINCT {u('name')} FROM memostore_v1_edges",
        "INSERT INTO memostore_values (cid, format, size_bytes, inline_data) "
        f"SELECT {k('cid')}, format, size_bytes, inline_data FROM memostore_v1_values",
        f"INSERT INTO memostore_refs (hid, cid) SELECT {k('hid')}, {k('cid')} FROM memostore_v1_refs",
        "INSERT INTO memostore_calls (hid, cid, op_version_id, status, multi_output, started_at, duration_s, "
        "error_type, error_message, error_traceback) "
        f"SELECT {k('c.hid')}, {k('c.cid')}, v.id, c.status, c.multi_output, c.started_at, c.duration_s, "
        f"{u('c.error_type')}, {u('c.error_message')}, {u('c.error_traceback')} FROM memostore_v1_calls c "
        f"JOIN memostore_ops o ON o.name = {u('c.op')} "
        f"JOIN memostore_op_versions v ON v.op_id = o.id AND v.version = {u('c.version')}",
        "INSERT INTO memostore_edges (call_id, output, name_id, position, ref_id) "
        "SELECT c.id, e.direction = 'out', n.id, e.position, r.id FROM memostore_v1_edges e "
        f"JOIN memostore_calls c ON c.hid = {k('e.call_hid')} JOIN memostore_refs r ON r.hid = {k('e.ref_hid')} "
        f"JOIN memostore_names n ON n.name = {u('e.name')}",
    ]


def upgrade() -> None:
    """Move every row of the version-1 tables into the version-2 tables."""
    bind = op.get_bind()
    is_sqlite = bind.dialect.name == "sqlite"
    for name in _V1_TABLES:
        op.rename_table(f"memostore_{name}", f"memostore_v1_{name}")
        if not is_sqlite:  # the primary key's index keeps its name, which the new table needs
            op.execute(f"ALTER INDEX memostore_{name}_pkey RENAME TO memostore_v1_{name}_pkey")
    _create_tables()
    if is_sqlite:
        # SQLite before 3.41 has no unhex(): the driver lends Python's.
        bind.connection.driver_connection.create_function(  # type: ignore[union-attr]
            "memostore_unhex", 1, lambda text: None if text is None else bytes.fromhex(text), deterministic=True)
        statements = _copy_statements("memostore_unhex({})", "CAST({} AS BLOB)")
    else:
        statements = _copy_statements("decode({}, 'hex')", "convert_to({}, 'UTF8')")
    for statement in statements:
        op.execute(statement)
    for name in _V1_TABLES:
        op.drop_table(f"memostore_v1_{name}")
    op.execute("UPDATE memostore_meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    """Not supported: open a version-1 store with the copy kept beside it, or a pg_dump."""
    raise NotImplementedError("memostore stores are not downgraded; restore the copy taken before upgrading")
