"""What the sockets of agents and visitors may have missed of their chats: the open conversations
of the agents and visitors given, and the newest messages of each (read for a resync after the
event bus lost messages; the sockets themselves skip what they were already shown)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import ChatConversation, ChatMessage, ChatStatus

# Ids per IN list: well under every database's limit on bound parameters.
CHUNK = 500


async def open_conversations(
    session: AsyncSession, agent_ids: Sequence[int], visitor_ids: Sequence[str]
) -> list[ChatConversation]:
    """The active conversations of ``agent_ids`` and the open (waiting or active) ones of
    ``visitor_ids``."""
    found: dict[int, ChatConversation] = {}
    open_statuses = (ChatStatus.WAITING, ChatStatus.ACTIVE)
    for start in range(0, max(len(agent_ids), len(visitor_ids)), CHUNK):
        agents, visitors = list(agent_ids[start : start + CHUNK]), list(visitor_ids[start : start + CHUNK])
        rows = await session.scalars(
            select(ChatConversation).where(
                or_(
                    (ChatConversation.agent_id.in_(agents) & (ChatConversation.status == ChatStatus.ACTIVE)),
                    (ChatConversation.visitor_id.in_(visitors) & ChatConversation.status.in_(open_statuses)),
                )
            )
        )
        for conversation in rows:
            found[conversation.id] = conversation
    return sorted(found.values(), key=lambda c: c.id)


async def newest_messages(
    session: AsyncSession, conversation_ids: Sequence[int], limit: int
) -> dict[int, list[ChatMessage]]:
    """The last ``limit`` messages of each conversation, oldest first."""
    messages: dict[int, list[ChatMessage]] = defaultdict(list)
    ids = list(conversation_ids)
    for start in range(0, len(ids), CHUNK):
        rows = await session.scalars(
            select(ChatMessage)
            .where(ChatMessage.conversation_id.in_(ids[start : start + CHUNK]))
            .order_by(ChatMessage.id)
        )
        for message in rows:
            messages[message.conversation_id].append(message)
    return {conversation_id: found[-limit:] for conversation_id, found in messages.items()}
