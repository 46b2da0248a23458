"""campaign dialer: the pacing lease per campaign, a dial's idempotency key, the agents working
a campaign and their rooms

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaign_dialer_leases",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_dialer_leases_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_dialer_leases")),
    )
    op.create_table(
        "campaign_agents",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("room", sa.String(length=100), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_campaign_agents_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_agents_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "agent_id", name=op.f("pk_campaign_agents")),
    )
    with op.batch_alter_table("campaign_agents", schema=None) as batch_op:
        batch_op.create_index("ix_campaign_agents_agent", ["agent_id"], unique=True)
    with op.batch_alter_table("campaign_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dial_key", sa.String(length=80), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_campaign_attempts_dial_key"), ["dial_key"])


def downgrade() -> None:
    with op.batch_alter_table("campaign_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_campaign_attempts_dial_key"), type_="unique")
        batch_op.drop_column("dial_key")
    with op.batch_alter_table("campaign_agents", schema=None) as batch_op:
        batch_op.drop_index("ix_campaign_agents_agent")
    op.drop_table("campaign_agents")
    op.drop_table("campaign_dialer_leases")
