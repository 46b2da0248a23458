"""do_not_call: the company's own do-not-call list and the imported national registry

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "do_not_call",
        sa.Column("id", ID, nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "api",
                "csv",
                "disposition",
                "opt-out-digit",
                "national",
                name="dncsource",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_do_not_call")),
        sa.UniqueConstraint("e164", "source", name="uq_do_not_call_e164_source"),
    )
    op.create_index("ix_do_not_call_source", "do_not_call", ["source"])


def downgrade() -> None:
    op.drop_index("ix_do_not_call_source", table_name="do_not_call")
    op.drop_table("do_not_call")
