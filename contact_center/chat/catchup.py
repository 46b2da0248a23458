"""A resync of the chat's sockets after the event bus may have lost messages (``bus.resync``).

Every message is stored before it is announced, so what an outage lost is in the database: this
instance reads the open conversations of the agents and visitors it holds sockets for, and
resends their newest messages. The sockets skip what they were already shown (by message id), so
nothing reaches an agent or a visitor twice; a message read here and also arriving live is shown
once. Read after the bus is subscribed again, so whatever is committed later arrives live.
"""

from __future__ import annotations

from channels.webchat.socket import VisitorSockets
from contact_center.chat.events import message_posted
from contact_center.chat.views import line_of
from contact_center.realtime import AgentSockets, deliver_to_agent
from crm_core.db import UnitOfWorkFactory
from crm_core.services import chat, chat_catchup


async def resend_missed(
    uow: UnitOfWorkFactory, agents: AgentSockets | None, visitors: VisitorSockets, limit: int
) -> int:
    """Resend the newest ``limit`` messages of each open conversation of the agents and visitors
    connected here to the sockets not yet shown them; returns how many frames went out."""
    agent_ids = agents.agent_ids() if agents is not None else []
    visitor_ids = visitors.visitor_ids()
    if not agent_ids and not visitor_ids:
        return 0
    async with uow() as unit:
        conversations = await chat_catchup.open_conversations(unit.session, agent_ids, visitor_ids)
        messages = await chat_catchup.newest_messages(unit.session, [c.id for c in conversations], limit)
        writers = sorted({m.agent_id for found in messages.values() for m in found if m.agent_id})
        names = await chat.agent_names(unit.session, writers)
    sent = 0
    for conversation in conversations:
        for message in messages.get(conversation.id, []):
            line = line_of(message, names.get(message.agent_id) if message.agent_id else None)
            if agents is not None:
                event = message_posted(conversation.id, conversation.agent_id, conversation.visitor_id, line)
                sent += await deliver_to_agent(agents, event)
            sent += await visitors.send(conversation.visitor_id, line)
    return sent
