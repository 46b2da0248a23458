"""campaigns: outbound campaigns, their members, dispositions, retry rules, call lists, dials and
the abandonment window's per-minute answer counts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("team_id", ID, nullable=True),
        sa.Column(
            "mode",
            sa.Enum(
                "preview", "progressive", "predictive", name="campaignmode", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("caller_id", sa.String(length=20), nullable=False),
        sa.Column("script_template", sa.Text(), nullable=False),
        sa.Column("regulatory_profile", sa.String(length=20), nullable=False),
        sa.Column("abandonment_target", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("daily_start", sa.Time(), nullable=True),
        sa.Column("daily_end", sa.Time(), nullable=True),
        sa.Column("schedule_timezone", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft", "running", "paused", "stopped", name="campaignstatus", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column(
            "machine_action",
            sa.Enum("hangup", "message", name="machineaction", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("machine_message", sa.Text(), nullable=True),
        sa.Column("price_per_minute", sa.Numeric(precision=10, scale=4), nullable=False),
        sa.Column("zone_keys", sa.JSON(), nullable=False),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["agents.id"],
            name=op.f("fk_campaigns_created_by_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_campaigns_team_id_teams"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_team_id"), "campaigns", ["team_id"], unique=False)
    op.create_table(
        "campaign_answer_counts",
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Integer(), nullable=False),
        sa.Column("amd_false_positives", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_answer_counts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "minute", name=op.f("pk_campaign_answer_counts")),
    )
    op.create_table(
        "campaign_contacts",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "in_flight",
                "done",
                "exhausted",
                "dnc",
                name="contactstate",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("zone_key", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_today", sa.Integer(), nullable=False),
        sa.Column("attempts_day", sa.Date(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_outcome",
            sa.Enum(
                "human",
                "busy",
                "no_answer",
                "machine",
                "failed",
                name="dialoutcome",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column("last_disposition", sa.String(length=50), nullable=True),
        sa.Column("callback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_agent_id", ID, nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_abandoned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("converted_value", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_agent_id"],
            ["agents.id"],
            name=op.f("fk_campaign_contacts_callback_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_contacts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_campaign_contacts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_contacts")),
        sa.UniqueConstraint("campaign_id", "e164", name="uq_campaign_contacts_number"),
    )
    op.create_index(
        "ix_campaign_contacts_callbacks",
        "campaign_contacts",
        ["campaign_id", "state", "callback_at"],
        unique=False,
    )
    op.create_index("ix_campaign_contacts_customer", "campaign_contacts", ["customer_id"], unique=False)
    op.create_index(
        "ix_campaign_contacts_disposition",
        "campaign_contacts",
        ["campaign_id", "last_disposition"],
        unique=False,
    )
    op.create_index(
        "ix_campaign_contacts_hopper",
        "campaign_contacts",
        ["campaign_id", "state", "zone_key", "next_attempt_at", "id"],
        unique=False,
    )
    op.create_table(
        "campaign_dispositions",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("callback", sa.Boolean(), nullable=False),
        sa.Column("do_not_call", sa.Boolean(), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_dispositions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_dispositions")),
        sa.UniqueConstraint("campaign_id", "code", name="uq_campaign_dispositions_code"),
    )
    op.create_table(
        "campaign_members",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("team_id", ID, nullable=True),
        sa.CheckConstraint(
            "(agent_id IS NULL) <> (team_id IS NULL)", name=op.f("ck_campaign_members_agent_or_team")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_campaign_members_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_members_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_campaign_members_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_members")),
        sa.UniqueConstraint("campaign_id", "agent_id", "team_id", name="uq_campaign_members_member"),
    )
    op.create_index("ix_campaign_members_agent", "campaign_members", ["agent_id"], unique=False)
    op.create_index("ix_campaign_members_team", "campaign_members", ["team_id"], unique=False)
    op.create_table(
        "campaign_retry_rules",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "human",
                "busy",
                "no_answer",
                "machine",
                "failed",
                name="dialoutcome",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("max_per_day", sa.Integer(), nullable=False),
        sa.Column("max_total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_retry_rules_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_retry_rules")),
        sa.UniqueConstraint("campaign_id", "outcome", name="uq_campaign_retry_rules_outcome"),
    )
    op.create_table(
        "campaign_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("contact_id", ID, nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "human",
                "busy",
                "no_answer",
                "machine",
                "failed",
                name="dialoutcome",
                native_enum=False,
                length=20,
            ),
            nullable=True,
        ),
        sa.Column("answered_by", sa.String(length=30), nullable=True),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("disposition", sa.String(length=50), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("amd_false_positive", sa.Boolean(), nullable=False),
        sa.Column("cost", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_campaign_attempts_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_attempts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["campaign_contacts.id"],
            name=op.f("fk_campaign_attempts_contact_id_campaign_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_attempts")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_campaign_attempts_call_sid")),
    )
    op.create_index(
        "ix_campaign_attempts_campaign", "campaign_attempts", ["campaign_id", "started_at"], unique=False
    )
    op.create_index("ix_campaign_attempts_contact", "campaign_attempts", ["contact_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_campaign_attempts_contact", table_name="campaign_attempts")
    op.drop_index("ix_campaign_attempts_campaign", table_name="campaign_attempts")
    op.drop_table("campaign_attempts")
    op.drop_table("campaign_retry_rules")
    op.drop_index("ix_campaign_members_team", table_name="campaign_members")
    op.drop_index("ix_campaign_members_agent", table_name="campaign_members")
    op.drop_table("campaign_members")
    op.drop_table("campaign_dispositions")
    op.drop_index("ix_campaign_contacts_hopper", table_name="campaign_contacts")
    op.drop_index("ix_campaign_contacts_disposition", table_name="campaign_contacts")
    op.drop_index("ix_campaign_contacts_customer", table_name="campaign_contacts")
    op.drop_index("ix_campaign_contacts_callbacks", table_name="campaign_contacts")
    op.drop_table("campaign_contacts")
    op.drop_table("campaign_answer_counts")
    op.drop_index(op.f("ix_campaigns_team_id"), table_name="campaigns")
    op.drop_table("campaigns")
