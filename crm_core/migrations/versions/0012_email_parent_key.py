"""email: the key of the message an inbound message answers (``parent_key``), indexed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 19:00:00

A message that arrives after a reply to it (mailbox order is not the order of writing) finds the
reply's ticket through this column. Stored inbound messages get it from their In-Reply-To, else
their last References entry, read and written in batches by id.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 2000
MAX_KEY = 255

emails = sa.table(
    "email_messages",
    sa.column("id", ID),
    sa.column("direction", sa.String()),
    sa.column("in_reply_to", sa.Text()),
    sa.column("reference_ids", sa.JSON()),
    sa.column("parent_key", sa.String()),
)


def _key(message_id: str) -> str:
    """As ``crm_core.rules.email_refs.message_key`` gives it at the time of this revision."""
    value = message_id.strip().strip("<>").strip()
    if len(value) <= MAX_KEY:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _parent(in_reply_to: Any, references: Any) -> str | None:
    if isinstance(in_reply_to, str) and in_reply_to.strip():
        return _key(in_reply_to)
    if isinstance(references, list) and references and isinstance(references[-1], str):
        return _key(references[-1])
    return None


def upgrade() -> None:
    op.add_column("email_messages", sa.Column("parent_key", sa.String(length=255), nullable=True))
    op.create_index("ix_email_messages_parent_key", "email_messages", ["parent_key"])
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.select(emails.c.id, emails.c.in_reply_to, emails.c.reference_ids)
            .where(emails.c.direction == "inbound", emails.c.id > last)
            .order_by(emails.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        changes = [
            {"_id": id_, "_parent_key": parent}
            for id_, in_reply_to, references in rows
            if (parent := _parent(in_reply_to, references)) is not None
        ]
        if changes:
            conn.execute(
                emails.update()
                .where(emails.c.id == sa.bindparam("_id"))
                .values(parent_key=sa.bindparam("_parent_key")),
                changes,
            )


def downgrade() -> None:
    op.drop_index("ix_email_messages_parent_key", table_name="email_messages")
    with op.batch_alter_table("email_messages") as batch:
        batch.drop_column("parent_key")
