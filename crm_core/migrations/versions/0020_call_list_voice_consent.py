"""call lists: the callee's voice consent copied onto each row, so the hopper reads no customer
per candidate

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_contacts") as batch:
        batch.add_column(sa.Column("voice_consent", sa.Boolean(), server_default=sa.false(), nullable=False))
    contacts = sa.table(
        "campaign_contacts", sa.column("customer_id"), sa.column("voice_consent", sa.Boolean())
    )
    customers = sa.table("customers", sa.column("id"), sa.column("consent", sa.JSON()))
    op.execute(
        contacts.update()
        .where(
            sa.exists().where(
                customers.c.id == contacts.c.customer_id,
                customers.c.consent["voice"].as_boolean() == sa.true(),
            )
        )
        .values(voice_consent=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("campaign_contacts") as batch:
        batch.drop_column("voice_consent")
