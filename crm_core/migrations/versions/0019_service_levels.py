"""service levels: business calendars, SLA policies, escalation rules, each ticket's SLA clock and
the escalation levels fired on it

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 22:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def _target() -> sa.Enum:
    return sa.Enum(
        "first_response", "next_response", "resolution", name="slatarget", native_enum=False, length=20
    )


def upgrade() -> None:
    op.create_table(
        "service_calendars",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("weekly", sa.JSON(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_calendars")),
        sa.UniqueConstraint("name", name=op.f("uq_service_calendars_name")),
    )
    op.create_table(
        "sla_policies",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("calendar_id", ID, nullable=True),
        sa.Column(
            "priority",
            sa.Enum("low", "normal", "high", "urgent", name="priority", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column(
            "channel",
            sa.Enum("voice", "sms", "email", "chat", name="channel", native_enum=False, length=20),
            nullable=True,
        ),
        sa.Column("team_id", ID, nullable=True),
        sa.Column("segment", sa.String(100), nullable=True),
        sa.Column("vip", sa.Boolean(), nullable=True),
        sa.Column("first_response_minutes", sa.Integer(), nullable=True),
        sa.Column("next_response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["service_calendars.id"],
            name=op.f("fk_sla_policies_calendar_id_service_calendars"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_sla_policies_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_sla_policies_name")),
    )
    op.create_table(
        "escalation_rules",
        sa.Column("id", ID, nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("target", _target(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.Column("after_breach_minutes", sa.Integer(), nullable=True),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("reassign_team_id", ID, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["sla_policies.id"],
            name=op.f("fk_escalation_rules_policy_id_sla_policies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reassign_team_id"],
            ["teams.id"],
            name=op.f("fk_escalation_rules_reassign_team_id_teams"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_rules")),
        sa.UniqueConstraint("policy_id", "target", "level", name=op.f("uq_escalation_rules_policy_id")),
    )
    op.create_table(
        "ticket_slas",
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("policy_id", ID, nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("first_response_due_at", TZ, nullable=True),
        sa.Column("next_response_since", TZ, nullable=True),
        sa.Column("next_response_due_at", TZ, nullable=True),
        sa.Column("resolution_due_at", TZ, nullable=True),
        sa.Column("paused_since", TZ, nullable=True),
        sa.Column("pauses", sa.JSON(), nullable=False),
        sa.Column("next_check_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_slas_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["sla_policies.id"],
            name=op.f("fk_ticket_slas_policy_id_sla_policies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_slas")),
    )
    op.create_index("ix_ticket_slas_next_check_at", "ticket_slas", ["next_check_at"])
    op.create_table(
        "escalation_firings",
        sa.Column("id", ID, nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("rule_id", ID, nullable=False),
        sa.Column("target", _target(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("fired_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_escalation_firings_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["escalation_rules.id"],
            name=op.f("fk_escalation_firings_rule_id_escalation_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_firings")),
        sa.UniqueConstraint("ticket_id", "rule_id", name=op.f("uq_escalation_firings_ticket_id")),
    )
    op.create_index(op.f("ix_escalation_firings_ticket_id"), "escalation_firings", ["ticket_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_escalation_firings_ticket_id"), table_name="escalation_firings")
    op.drop_table("escalation_firings")
    op.drop_index("ix_ticket_slas_next_check_at", table_name="ticket_slas")
    op.drop_table("ticket_slas")
    op.drop_table("escalation_rules")
    op.drop_table("sla_policies")
    op.drop_table("service_calendars")
