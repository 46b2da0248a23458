"""Chat transcripts emailed to visitors: the port the chat desk calls, and an outbox adapter.

The desk asks a :class:`TranscriptMailer` for the email inside the unit of work that ends the
chat. :class:`OutboxTranscriptMailer` writes it as a ``chat_transcript_emails`` row (once per
conversation), which the mail sender delivers later; a sender that has its own outbox can
implement the port instead and write there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from crm_core.db import UnitOfWork
from crm_core.models import ChatConversation, ChatMessage, ChatSender, ChatTranscriptEmail
from crm_core.services.chat import messages_and_names
from crm_core.sql import insert_ignore

TRANSCRIPT_SUBJECT = "Your chat transcript"


@dataclass(frozen=True, slots=True)
class TranscriptEmail:
    conversation_id: int
    to: str
    subject: str
    body: str


class TranscriptMailer(Protocol):
    async def send_transcript(self, uow: UnitOfWork, email: TranscriptEmail, now: datetime) -> bool:
        """Queue the email in ``uow`` at ``now`` (sent after commit); False if it was queued
        before."""
        ...


class OutboxTranscriptMailer:
    """Stores the request in ``chat_transcript_emails`` with status ``pending``."""

    async def send_transcript(self, uow: UnitOfWork, email: TranscriptEmail, now: datetime) -> bool:
        values = {
            "conversation_id": email.conversation_id,
            "to_address": email.to,
            "subject": email.subject,
            "body": email.body,
            "status": "pending",
            "created_at": now,
        }
        return await insert_ignore(uow.session, ChatTranscriptEmail, values, ["conversation_id"]) is not None


async def transcript_email(uow: UnitOfWork, conversation: ChatConversation, to: str) -> TranscriptEmail:
    """The transcript of ``conversation`` as an email to ``to``."""
    messages, names = await messages_and_names(uow.session, conversation.id)
    body = transcript_text(conversation, messages, names)
    return TranscriptEmail(conversation.id, to, TRANSCRIPT_SUBJECT, body)


def transcript_text(
    conversation: ChatConversation, messages: Sequence[ChatMessage], names: dict[int, str]
) -> str:
    """The conversation as plain text, one line per message, times in UTC."""

    def who(message: ChatMessage) -> str:
        if message.sender is ChatSender.VISITOR:
            return conversation.visitor_name or "You"
        return names.get(message.agent_id or 0, "Agent")

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M UTC")

    lines = [f"Chat of {stamp(conversation.created_at)}", ""]
    for message in messages:
        lines.append(f"[{stamp(message.created_at)}] {who(message)}: {message.body}")
    return "\n".join(lines) + "\n"
