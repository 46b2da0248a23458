"""web chat: addresses blocked for a while (a blocked visitor's new token is refused there too)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_blocked_addresses",
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("until", WHEN, nullable=False),
        sa.Column("blocked_at", WHEN, nullable=False),
        sa.Column("blocked_by_id", ID, nullable=True),
        sa.Column("conversation_id", ID, nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["blocked_by_id"],
            ["agents.id"],
            name=op.f("fk_chat_blocked_addresses_blocked_by_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_blocked_addresses_conversation_id_chat_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("ip", name=op.f("pk_chat_blocked_addresses")),
    )


def downgrade() -> None:
    op.drop_table("chat_blocked_addresses")
