"""email: quarantine for received messages that could not be stored

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "email_quarantine",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("mailbox", sa.String(length=100), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.String(length=255), nullable=True),
        sa.Column("raw_sha256", sa.String(length=64), nullable=True),
        sa.Column("raw_size", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_attempt_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.Column("email_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["email_messages.id"],
            name=op.f("fk_email_quarantine_email_id_email_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_quarantine")),
        sa.UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_email_quarantine_mailbox_uid"),
    )


def downgrade() -> None:
    op.drop_table("email_quarantine")
