"""Schema version 1: the tables as the first release wrote them (keyed by hex strings).

Stores of that release have no Alembic version table; Alembic starts them
here, and this step changes nothing.

Revision ID: v1
"""

from __future__ import annotations

revision = "v1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: the release that wrote version 1 created these tables."""


def downgrade() -> None:
    """Nothing to undo."""
