"""email: messages in and out (with the outbox), attachments, mailbox checkpoints, participants

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_address_health",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("failing", sa.Boolean(), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.Column("last_bounce_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_email_address_health")),
    )
    op.create_table(
        "email_mailbox_states",
        sa.Column("mailbox", sa.String(length=100), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", name=op.f("pk_email_mailbox_states")),
    )
    op.create_table(
        "email_participants",
        sa.Column("id", ID, nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_email_participants_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_participants")),
        sa.UniqueConstraint("ticket_id", "address", name="uq_email_participants_ticket_address"),
    )
    op.create_table(
        "email_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column(
            "direction",
            sa.Enum("inbound", "outbound", "internal", name="direction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "message",
                "auto_reply",
                "list",
                "robot",
                "bounce",
                "loop",
                "reply",
                "acknowledgment",
                name="emailkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "queued",
                "sending",
                "sent",
                "failed",
                "bounced",
                name="emailstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("mailbox", sa.String(length=100), nullable=True),
        sa.Column("ticket_id", ID, nullable=True),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("interaction_id", ID, nullable=True),
        sa.Column("author_id", ID, nullable=True),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("to_addresses", sa.JSON(), nullable=False),
        sa.Column("cc_addresses", sa.JSON(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.Text(), nullable=True),
        sa.Column("reference_ids", sa.JSON(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("visible_text", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("defects", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("raw_sha256", sa.String(length=64), nullable=True),
        sa.Column("raw_size", sa.BigInteger(), nullable=True),
        sa.Column("sent_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["agents.id"], name=op.f("fk_email_messages_author_id_agents"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_email_messages_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_email_messages_interaction_id_interactions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_email_messages_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint("message_key", name=op.f("uq_email_messages_message_key")),
    )
    op.create_index("ix_email_messages_outbox", "email_messages", ["status", "next_attempt_at"], unique=False)
    op.create_index(
        "ix_email_messages_recipient_kind",
        "email_messages",
        ["recipient", "kind", "created_at"],
        unique=False,
    )
    op.create_index("ix_email_messages_ticket", "email_messages", ["ticket_id", "id"], unique=False)
    op.create_table(
        "email_attachments",
        sa.Column("id", ID, nullable=False),
        sa.Column("email_id", ID, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("inline", sa.Boolean(), nullable=False),
        sa.Column("skipped_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["email_messages.id"],
            name=op.f("fk_email_attachments_email_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_attachments")),
    )
    op.create_index(op.f("ix_email_attachments_email_id"), "email_attachments", ["email_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_email_attachments_email_id"), table_name="email_attachments")
    op.drop_table("email_attachments")
    op.drop_index("ix_email_messages_ticket", table_name="email_messages")
    op.drop_index("ix_email_messages_recipient_kind", table_name="email_messages")
    op.drop_index("ix_email_messages_outbox", table_name="email_messages")
    op.drop_table("email_messages")
    op.drop_table("email_participants")
    op.drop_table("email_mailbox_states")
    op.drop_table("email_address_health")
