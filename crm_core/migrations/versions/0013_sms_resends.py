"""sms: how many times reconciliation sent a text again (``resends``)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:40:00

An unconfirmed text Twilio has no record of is sent again at most once; the count makes that
limit hold across sweeps, instances and restarts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sms_messages", sa.Column("resends", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sms_messages") as batch:
        batch.drop_column("resends")
