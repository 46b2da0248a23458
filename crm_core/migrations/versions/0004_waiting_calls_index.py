"""index of calls waiting in the queue (the queue poll must not scan every interaction)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("status = 'queued-for-agent'")


def upgrade() -> None:
    op.create_index(
        "ix_interactions_waiting",
        "interactions",
        ["started_at", "id"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_waiting", table_name="interactions")
