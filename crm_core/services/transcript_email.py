"""Chat transcripts through the email outbox: the :class:`TranscriptMailer` used when mail sending
is configured.

The transcript becomes an outbound email (text and an escaped HTML alternative) from the default
mailbox's identity, queued in ``email_messages`` and logged as an outbound email interaction on
the chat's customer and ticket (by :func:`~crm_core.services.email_outbound.queue_email`, with or
without a ticket); the email outbox sender delivers it. The ``chat_transcript_emails``
row (unique per conversation) is kept as the ledger that makes a second request harmless.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime

from crm_core.db import UnitOfWork
from crm_core.models import ChatConversation, ChatTranscriptEmail, EmailKind, Ticket
from crm_core.services.chat_transcripts import TranscriptEmail
from crm_core.services.email_outbound import Identity, queue_email
from crm_core.sql import insert_ignore

QUEUED = "queued"


def transcript_html(subject: str, text: str) -> str:
    """The transcript's HTML alternative: every line escaped, so a visitor's ``<script>`` stays text."""
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line)
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f'<h1 style="font-size:16px">{html.escape(subject)}</h1>{lines}</body></html>'
    )


@dataclass(frozen=True, slots=True)
class EmailOutboxTranscriptMailer:
    """Queues transcripts in the email outbox, from ``identity`` (the default mailbox)."""

    identity: Identity
    secret: bytes
    domain: str

    async def send_transcript(self, uow: UnitOfWork, email: TranscriptEmail, now: datetime) -> bool:
        session = uow.session
        ledger = {
            "conversation_id": email.conversation_id,
            "to_address": email.to,
            "subject": email.subject,
            "body": email.body,
            "status": QUEUED,
            "created_at": now,
        }
        if await insert_ignore(session, ChatTranscriptEmail, ledger, ["conversation_id"]) is None:
            return False
        conversation = await session.get_one(ChatConversation, email.conversation_id)
        ticket = await session.get(Ticket, conversation.ticket_id) if conversation.ticket_id else None
        await queue_email(
            uow,
            ticket=ticket,
            customer_id=conversation.customer_id,
            identity=self.identity,
            secret=self.secret,
            domain=self.domain,
            kind=EmailKind.REPLY,
            to=[email.to],
            subject=email.subject,
            text=email.body,
            html=transcript_html(email.subject, email.body),
            automatic=True,
            author_id=conversation.agent_id,
            meta={"chat_conversation_id": conversation.id},
            now=now,
        )
        return True
