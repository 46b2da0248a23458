"""sms: text messages both ways (the outbound outbox) and the opted-out numbers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "direction",
            sa.Enum("inbound", "outbound", "internal", name="direction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("ticket_id", ID, nullable=True),
        sa.Column("interaction_id", ID, nullable=True),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("message_sid", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=150), nullable=True),
        sa.Column("from_number", sa.String(length=40), nullable=False),
        sa.Column("to_number", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("encoding", sa.String(length=10), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_sms_messages_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_sms_messages_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_sms_messages_interaction_id_interactions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_sms_messages_agent_id_agents"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("message_sid", name=op.f("uq_sms_messages_message_sid")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_sms_messages_idempotency_key")),
    )
    op.create_index("ix_sms_messages_ticket", "sms_messages", ["ticket_id", "id"])
    op.create_index("ix_sms_messages_customer", "sms_messages", ["customer_id", "id"])
    op.create_index("ix_sms_messages_status", "sms_messages", ["status", "claimed_at"])
    op.create_table(
        "sms_suppressions",
        sa.Column("id", ID, nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("keyword", sa.String(length=20), nullable=True),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_sms_suppressions_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_suppressions")),
        sa.UniqueConstraint("phone", name=op.f("uq_sms_suppressions_phone")),
    )


def downgrade() -> None:
    op.drop_table("sms_suppressions")
    op.drop_index("ix_sms_messages_status", table_name="sms_messages")
    op.drop_index("ix_sms_messages_customer", table_name="sms_messages")
    op.drop_index("ix_sms_messages_ticket", table_name="sms_messages")
    op.drop_table("sms_messages")
