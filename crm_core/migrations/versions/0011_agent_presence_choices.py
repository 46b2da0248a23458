"""routing: the presence each agent last chose, kept in the database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 10:00:00

Presence lives in Redis; should Redis lose it, what agents chose (available, away, offline) and
since when is read back from here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_presence_choices",
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("since", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_presence_choices_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_presence_choices")),
    )


def downgrade() -> None:
    op.drop_table("agent_presence_choices")
