"""What the visitor and the agent are shown of a conversation, read through the core."""

from __future__ import annotations

from channels.webchat.protocol import ChatLine, ConversationState
from crm_core.db import UnitOfWork
from crm_core.models import ChatConversation, ChatMessage, ChatStatus
from crm_core.services import chat, chat_queue


def line_of(message: ChatMessage, agent_name: str | None = None) -> ChatLine:
    return ChatLine(
        message_id=message.id,
        client_id=message.client_id,
        sender=message.sender.value,
        text=message.body,
        at=message.created_at,
        agent_name=agent_name,
    )


async def history(uow: UnitOfWork, conversation: ChatConversation, limit: int) -> list[ChatLine]:
    """The conversation's last ``limit`` messages."""
    messages, names = await chat.messages_and_names(uow.session, conversation.id, limit)
    return [line_of(m, names.get(m.agent_id) if m.agent_id else None) for m in messages]


async def conversation_state(uow: UnitOfWork, conversation: ChatConversation) -> ConversationState:
    waiting = conversation.status is ChatStatus.WAITING
    return ConversationState(
        id=conversation.id,
        status=conversation.status.value,
        agent_name=await chat.agent_name(uow.session, conversation.agent_id),
        visitor_read_id=conversation.visitor_read_id,
        agent_read_id=conversation.agent_read_id,
        position=await chat_queue.queue_position(uow.session, conversation) if waiting else None,
    )
