"""Schema version 3: runs (outermost blocks and maps) and the run that computed each call.

Adds the ``memostore_runs`` table, as it was when this step was written, and
a nullable ``run_id`` column (with its index) to ``memostore_calls``: calls
stored before keep NULL there, since no run was recorded for them. Adding a
nullable column rewrites no row, so the step takes milliseconds on any size.

Revision ID: v3
Revises: v2
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Float, Integer, LargeBinary, String, Text

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the runs table and give calls their run."""
    row_id = BigInteger().with_variant(Integer(), "sqlite")
    op.create_table(
        "memostore_runs", Column("id", row_id, primary_key=True), Column("kind", String(16), nullable=False),
        Column("label", Text), Column("tags", Text, nullable=False), Column("host", Text, nullable=False),
        Column("user", Text, nullable=False), Column("pid", Integer, nullable=False),
        Column("started_at", Float, nullable=False), Column("finished_at", Float),
        Column("computed", Integer, nullable=False), Column("hits", Integer, nullable=False),
        Column("failed", Integer, nullable=False), Column("loaded", LargeBinary))
    op.add_column("memostore_calls", Column("run_id", row_id))
    op.create_index("memostore_calls_run", "memostore_calls", ["run_id"])
    op.execute("UPDATE memostore_meta SET value = '3' WHERE key = 'schema_version'")


def downgrade() -> None:
    """Not supported: open a version-2 store with the copy kept beside it, or a pg_dump."""
    raise NotImplementedError("memostore stores are not downgraded; restore the copy taken before upgrading")
