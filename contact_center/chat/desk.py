"""The chat desk: what visitors and agents do in a chat.

- Visitors talk over ``/ws/chat`` (``channels.webchat``): ``visitor_socket.VisitorChats`` acts on
  their frames. Agents use REST (``/api/v1/chats``, :mod:`contact_center.chat.routes`)
  and their own socket (``/ws/agent``: typing): :class:`ChatDesk` below.
- Everything for an agent goes on the bus as an event naming ``agent_id``, everything for a
  visitor as one naming ``visitor_id`` (:mod:`contact_center.chat.events`): each instance delivers
  to the sockets it holds, so both ends may be on different instances.
- A new chat waits in the queue until an agent has room
  (:class:`~contact_center.chat.queue.ChatQueue`). Nobody available, or outside the hours in
  ``[voice.hours]``: the widget offers to leave a message, which opens a ticket.

Each use case checks (the core's rules), runs one unit of work through ``crm_core.services.chat``
(which stores), and publishes what the other end must see after the commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from channels.webchat.protocol import AgentRead, AgentTyping, Blocked
from channels.webchat.rate_limits import BatchedRateLimit
from contact_center.chat.events import message_posted, to_visitor
from contact_center.chat.policy import ChatPolicy
from contact_center.chat.queue import ChatQueue, Publish, Spawn
from contact_center.chat.views import line_of
from contact_center.chat.visitor_socket import VisitorChats
from contact_center.rate_limit import RateLimiter
from contact_center.routing.chat_load import ChatRouter
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import Forbidden, InvalidInput
from crm_core.models import ChatConversation, ChatMessage, ChatSender, ChatStatus
from crm_core.ports import Clock
from crm_core.rules.chat_text import clean_client_id, clean_text
from crm_core.services import chat, chat_blocks
from crm_core.services.chat_transcripts import TranscriptMailer
from crm_core.sql import AutocommitConnections
from crm_core.visibility import Viewer


class ChatDesk:
    """The agents' side of a chat; ``visitors`` is the visitors' side, ``queue`` the queue."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        publish: Publish,
        router: ChatRouter,
        limiter: RateLimiter,
        policy: ChatPolicy,
        mailer: TranscriptMailer,
        *,
        spawn: Spawn,
        connected: Callable[[str], bool],
        message_limits: BatchedRateLimit | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock = clock or SystemClock()
        self._uow = uow
        self._publish = publish
        self._policy = policy
        # Visitors' messages are single statements on kept autocommit connections.
        self._connections = AutocommitConnections(uow.engine)
        self.queue = ChatQueue(
            uow,
            self._connections,
            publish,
            router,
            mailer,
            history_limit=policy.history_limit,
            spawn=spawn,
            connected=connected,
            clock=clock,
        )
        self.visitors = VisitorChats(
            uow,
            self._connections,
            publish,
            self.queue,
            limiter,
            message_limits or BatchedRateLimit(None),
            policy,
            mailer,
            clock,
        )

    async def close(self) -> None:
        await self.queue.close()
        await self._connections.close()

    async def _handled(
        self, uow: UnitOfWork, viewer: Viewer, conversation_id: int, *, for_update: bool = False
    ) -> ChatConversation:
        """The conversation, if the viewer is the agent who has it or a supervisor who sees it."""
        conversation = await chat.get_visible_conversation(
            uow.session, viewer, conversation_id, for_update=for_update
        )
        if conversation.agent_id != viewer.agent_id and not viewer.is_supervisor:
            raise Forbidden("only the agent who has this chat or a supervisor can act on it")
        return conversation

    async def agent_message(
        self, viewer: Viewer, conversation_id: int, text: str, client_id: str | None
    ) -> tuple[ChatMessage, bool]:
        body = clean_text(text, self._policy.max_message_chars)
        key = clean_client_id(client_id) if client_id else f"agent-{secrets.token_hex(12)}"
        async with self._uow() as uow:
            conversation = await self._handled(uow, viewer, conversation_id)
            if conversation.status is not ChatStatus.ACTIVE:
                raise InvalidInput(f"the chat is {conversation.status.value}; messages go to active chats")
            message, created = await chat.add_message(
                uow,
                conversation,
                sender=ChatSender.AGENT,
                body=body,
                client_id=key,
                agent_id=viewer.agent_id,
                now=self._clock.now(),
            )
            # A resend is announced again: the first announcement may have been lost (each socket
            # is shown a message once).
            line = line_of(message, await chat.agent_name(uow.session, message.agent_id))
            uow.record(message_posted(conversation.id, conversation.agent_id, conversation.visitor_id, line))
            await uow.commit()
        return message, created

    async def agent_read(self, viewer: Viewer, conversation_id: int, up_to: int) -> int | None:
        async with self._uow() as uow:
            conversation = await self._handled(uow, viewer, conversation_id)
            mark = await chat.mark_read(uow, conversation, ChatSender.AGENT, up_to)
            if mark is not None:
                uow.record(to_visitor(conversation.visitor_id, AgentRead(mark)))
            await uow.commit()
        return mark if mark is not None else conversation.agent_read_id

    async def agent_typing(self, agent_id: int, conversation_id: int, typing: bool) -> None:
        async with self._uow() as uow:
            conversation = await uow.session.get(ChatConversation, conversation_id)
        if (
            conversation is None
            or conversation.agent_id != agent_id
            or conversation.status is not ChatStatus.ACTIVE
        ):
            raise InvalidInput(f"chat {conversation_id} is not one of your active chats", "conversation_id")
        await self._publish([to_visitor(conversation.visitor_id, AgentTyping(typing))])

    async def agent_close(self, viewer: Viewer, conversation_id: int) -> ChatConversation:
        async with self._uow() as uow:
            conversation = await self._handled(uow, viewer, conversation_id, for_update=True)
            freed = await self.queue.end(uow, conversation, "agent")
            await uow.commit()
        await self.queue.ended(freed)
        return conversation

    async def block(
        self, viewer: Viewer, conversation_id: int, reason: str | None, address_hours: float | None = None
    ) -> ChatConversation:
        """Block the chat's visitor, and for ``address_hours`` (by default the policy's) the
        address the chat came from; end the chat."""
        hours = self._policy.block_address_hours if address_hours is None else address_hours
        async with self._uow() as uow:
            conversation = await self._handled(uow, viewer, conversation_id, for_update=True)
            now = self._clock.now()
            visitor = await chat_blocks.block_visitor(uow, conversation, viewer.agent_id, reason, now=now)
            ip = conversation.ip or visitor.last_ip
            await chat_blocks.block_address(uow, conversation, ip, viewer.agent_id, reason, hours, now=now)
            freed = await self.queue.end(uow, conversation, "blocked")
            uow.record(to_visitor(conversation.visitor_id, Blocked()))
            await uow.commit()
        await self.queue.ended(freed)
        return conversation

    async def my_chats(self, viewer: Viewer, statuses: Sequence[ChatStatus]) -> list[ChatConversation]:
        async with self._uow() as uow:
            return await chat.conversations_of_agent(uow.session, viewer.agent_id, statuses)

    async def transcript(
        self, viewer: Viewer, conversation_id: int
    ) -> tuple[ChatConversation, list[ChatMessage], dict[int, str]]:
        async with self._uow() as uow:
            conversation = await chat.get_visible_conversation(uow.session, viewer, conversation_id)
            messages, names = await chat.messages_and_names(uow.session, conversation.id)
        return conversation, messages, names
