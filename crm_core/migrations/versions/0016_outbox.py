"""outbox: one table carrying the delivery of every outbound message, texts and mail alike

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 22:00:00

Outbound texts and mail still on their way (queued, claimed, unconfirmed, waiting to be tried
again) get their outbox row here; those already handed over or failed need none, except texts
sent under an agent's idempotency key, which keep it (a request repeated after the upgrade gets
the earlier text, not a second one).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "channel",
            sa.Enum("sms", "email", name="outboxchannel", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "claimed",
                "sent",
                "refused",
                "unconfirmed",
                "failed",
                name="outboxstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("sender_key", sa.String(length=320), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("sms_message_id", ID, nullable=True),
        sa.Column("email_message_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sms_message_id"],
            ["sms_messages.id"],
            name=op.f("fk_outbox_sms_message_id_sms_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["email_message_id"],
            ["email_messages.id"],
            name=op.f("fk_outbox_email_message_id_email_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
        sa.UniqueConstraint("sms_message_id", name=op.f("uq_outbox_sms_message_id")),
        sa.UniqueConstraint("email_message_id", name=op.f("uq_outbox_email_message_id")),
    )
    op.create_index("ix_outbox_due", "outbox", ["channel", "status", "next_attempt_at"])
    op.execute(
        "INSERT INTO outbox (channel, idempotency_key, status, sender_key, attempts, next_attempt_at,"
        " claimed_at, last_error, resends, email_message_id, created_at, updated_at)"
        " SELECT 'email', 'email:' || message_key,"
        " CASE status WHEN 'sending' THEN 'claimed' ELSE 'queued' END,"
        " COALESCE(from_address, ''), attempts, COALESCE(next_attempt_at, CURRENT_TIMESTAMP),"
        " CASE status WHEN 'sending' THEN created_at END, last_error, 0, id, created_at, created_at"
        " FROM email_messages WHERE direction = 'outbound' AND status IN ('queued', 'sending')"
    )
    op.execute(
        "INSERT INTO outbox (channel, idempotency_key, status, sender_key, attempts, next_attempt_at,"
        " claimed_at, last_error, resends, sms_message_id, created_at, updated_at)"
        " SELECT 'sms', 'sms:' || COALESCE(idempotency_key, '#' || CAST(id AS VARCHAR(20))),"
        " CASE WHEN status = 'unconfirmed' THEN 'unconfirmed'"
        " WHEN claimed_at IS NOT NULL THEN 'claimed' ELSE 'queued' END,"
        " from_number, CASE WHEN claimed_at IS NULL THEN 0 ELSE 1 END, NULL, claimed_at,"
        " error_message, resends, id, created_at, updated_at"
        " FROM sms_messages WHERE direction = 'outbound' AND message_sid IS NULL"
        " AND status IN ('queued', 'unconfirmed')"
    )
    op.execute(
        "INSERT INTO outbox (channel, idempotency_key, status, sender_key, attempts, next_attempt_at,"
        " claimed_at, last_error, resends, sms_message_id, created_at, updated_at)"
        " SELECT 'sms', 'sms:' || idempotency_key,"
        " CASE WHEN message_sid IS NULL THEN 'failed' ELSE 'sent' END,"
        " from_number, 1, NULL, claimed_at, error_message, resends, id, created_at, updated_at"
        " FROM sms_messages WHERE direction = 'outbound' AND idempotency_key IS NOT NULL"
        " AND NOT (message_sid IS NULL AND status IN ('queued', 'unconfirmed'))"
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
