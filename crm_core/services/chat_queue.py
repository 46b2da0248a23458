"""The chat queue as the database holds it: who is waiting, in what order, and how many active
chats each agent has (the chat load is rebuilt from this)."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import ChatConversation, ChatStatus, Customer
from crm_core.sql import Executor

_ANYONE_WAITING = text("SELECT 1 FROM chat_conversations WHERE status = 'waiting' LIMIT 1")


async def anyone_waiting(db: Executor) -> bool:
    """Whether the queue has anyone (one indexed probe: the queue is polled often, mostly empty)."""
    return (await db.execute(_ANYONE_WAITING)).first() is not None


async def waiting_conversations(session: AsyncSession, limit: int = 200) -> list[ChatConversation]:
    """The queue: waiting conversations, oldest first."""
    rows = await session.scalars(
        select(ChatConversation)
        .where(ChatConversation.status == ChatStatus.WAITING)
        .order_by(ChatConversation.created_at, ChatConversation.id)
        .limit(limit)
    )
    return list(rows)


async def queue_position(session: AsyncSession, conversation: ChatConversation) -> int:
    """1 for the oldest waiting conversation, 2 for the next, and so on."""
    ahead = await session.scalar(
        select(func.count())
        .select_from(ChatConversation)
        .where(
            ChatConversation.status == ChatStatus.WAITING,
            or_(
                ChatConversation.created_at < conversation.created_at,
                and_(
                    ChatConversation.created_at == conversation.created_at,
                    ChatConversation.id < conversation.id,
                ),
            ),
        )
    )
    return int(ahead or 0) + 1


async def owner_of_customer(session: AsyncSession, customer_id: int) -> int | None:
    """The agent who owns the customer (a chat of theirs goes to them first, when they have room)."""
    owner_id: int | None = await session.scalar(select(Customer.owner_id).where(Customer.id == customer_id))
    return owner_id


async def active_chats_per_agent(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(
        select(ChatConversation.agent_id, func.count())
        .where(ChatConversation.status == ChatStatus.ACTIVE, ChatConversation.agent_id.is_not(None))
        .group_by(ChatConversation.agent_id)
    )
    return {int(agent_id): int(count) for agent_id, count in rows.all()}
