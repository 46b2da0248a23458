"""web chat: visitors, conversations, messages and transcript emails

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chat_visitors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("last_ip", sa.String(length=64), nullable=True),
        sa.Column("blocked_at", WHEN, nullable=True),
        sa.Column("blocked_by_id", ID, nullable=True),
        sa.Column("block_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["blocked_by_id"],
            ["agents.id"],
            name=op.f("fk_chat_visitors_blocked_by_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_chat_visitors_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_visitors")),
    )
    op.create_table(
        "chat_conversations",
        sa.Column("id", ID, nullable=False),
        sa.Column("visitor_id", sa.String(length=64), nullable=False),
        sa.Column("interaction_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("ticket_id", ID, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "waiting", "active", "closed", "message-left", name="chatstatus", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("origin", sa.String(length=300), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("visitor_name", sa.String(length=200), nullable=True),
        sa.Column("visitor_email", sa.String(length=320), nullable=True),
        sa.Column("visitor_phone", sa.String(length=20), nullable=True),
        sa.Column("transcript_to", sa.String(length=320), nullable=True),
        sa.Column("visitor_read_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_read_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("assigned_at", WHEN, nullable=True),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.Column("closed_by", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_chat_conversations_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_chat_conversations_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_chat_conversations_interaction_id_interactions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_chat_conversations_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["chat_visitors.id"],
            name=op.f("fk_chat_conversations_visitor_id_chat_visitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_chat_conversations_interaction_id")),
    )
    op.create_index("ix_chat_conversations_status_created", "chat_conversations", ["status", "created_at"])
    op.create_index("ix_chat_conversations_agent_status", "chat_conversations", ["agent_id", "status"])
    op.create_index("ix_chat_conversations_visitor", "chat_conversations", ["visitor_id"])
    op.create_index(op.f("ix_chat_conversations_customer_id"), "chat_conversations", ["customer_id"])
    op.create_table(
        "chat_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column(
            "sender",
            sa.Enum("visitor", "agent", name="chatsender", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_chat_messages_agent_id_agents"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_messages_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("conversation_id", "client_id", name="uq_chat_messages_conversation_client"),
    )
    op.create_table(
        "chat_transcript_emails",
        sa.Column("id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_transcript_emails_conversation_id_chat_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_transcript_emails")),
        sa.UniqueConstraint("conversation_id", name=op.f("uq_chat_transcript_emails_conversation_id")),
    )


def downgrade() -> None:
    op.drop_table("chat_transcript_emails")
    op.drop_table("chat_messages")
    op.drop_index(op.f("ix_chat_conversations_customer_id"), table_name="chat_conversations")
    op.drop_index("ix_chat_conversations_visitor", table_name="chat_conversations")
    op.drop_index("ix_chat_conversations_agent_status", table_name="chat_conversations")
    op.drop_index("ix_chat_conversations_status_created", table_name="chat_conversations")
    op.drop_table("chat_conversations")
    op.drop_table("chat_visitors")
