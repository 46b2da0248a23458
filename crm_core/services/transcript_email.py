"""Chat transcripts through the email outbox: the :class:`TranscriptMailer` used when mail sending
is configured.

The transcript becomes an outbound email (text and an escaped HTML alternative) from the default
mailbox's identity, queued in ``email_messages`` and logged as an outbound email interaction on
the chat's customer and ticket; the email outbox sender delivers it. The ``chat_transcript_emails``
row (unique per conversation) is kept as the ledger that makes a second request harmless.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from crm_core.db import UnitOfWork
from crm_core.models import (
    ChatConversation,
    ChatTranscriptEmail,
    EmailKind,
    EmailMessage,
    EmailStatus,
    Interaction,
    Ticket,
    utcnow,
)
from crm_core.rules.email_refs import message_key, new_message_id
from crm_core.services.chat_transcripts import TranscriptEmail
from crm_core.services.email_outbound import (
    AUTOMATIC_HEADERS,
    Identity,
    build_outbound,
    delivery_event,
    interaction_logged,
)
from crm_core.services.email_participants import add_participants
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction

QUEUED = "queued"


def transcript_html(subject: str, text: str) -> str:
    """The transcript's HTML alternative: every line escaped, so a visitor's ``<script>`` stays text."""
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line)
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f'<h1 style="font-size:16px">{html.escape(subject)}</h1>{lines}</body></html>'
    )


def _ticketless_outbound(
    conversation: ChatConversation, identity: Identity, domain: str, email: TranscriptEmail, html_body: str
) -> EmailMessage:
    """An outbox row for a chat without a ticket: logged on the customer only, no ticket marker."""
    now = utcnow()
    message_id = new_message_id(None, b"", domain)
    key = message_key(message_id)
    interaction = Interaction(
        channel=Channel.EMAIL,
        direction=Direction.OUTBOUND,
        customer_id=conversation.customer_id,
        agent_id=conversation.agent_id,
        ticket_id=None,
        external_id=key,
        status=QUEUED,
        started_at=now,
        subject=email.subject[:500],
        body=email.body.strip(),
        meta={"kind": str(EmailKind.REPLY), "to": [email.to]},
        created_at=now,
    )
    return EmailMessage(
        message_key=key,
        message_id=message_id,
        direction=Direction.OUTBOUND,
        kind=EmailKind.REPLY,
        status=EmailStatus.QUEUED,
        mailbox=identity.mailbox,
        ticket_id=None,
        customer_id=conversation.customer_id,
        author_id=conversation.agent_id,
        from_address=identity.address,
        from_name=identity.display_name,
        recipient=email.to,
        to_addresses=[email.to],
        cc_addresses=[],
        subject=email.subject,
        in_reply_to=None,
        reference_ids=[],
        text_body=email.body.rstrip() + "\n",
        html_body=html_body,
        visible_text=email.body.strip(),
        headers=dict(AUTOMATIC_HEADERS),
        defects=[],
        attempts=0,
        sent_date=now,
        next_attempt_at=now,
        created_at=now,
        interaction=interaction,
        attachments=[],
    )


@dataclass(frozen=True, slots=True)
class EmailOutboxTranscriptMailer:
    """Queues transcripts in the email outbox, from ``identity`` (the default mailbox)."""

    identity: Identity
    secret: bytes
    domain: str

    async def send_transcript(self, uow: UnitOfWork, email: TranscriptEmail) -> bool:
        session = uow.session
        ledger = {
            "conversation_id": email.conversation_id,
            "to_address": email.to,
            "subject": email.subject,
            "body": email.body,
            "status": QUEUED,
            "created_at": utcnow(),
        }
        if await insert_ignore(session, ChatTranscriptEmail, ledger, ["conversation_id"]) is None:
            return False
        conversation = await session.get_one(ChatConversation, email.conversation_id)
        html_body = transcript_html(email.subject, email.body)
        ticket = await session.get(Ticket, conversation.ticket_id) if conversation.ticket_id else None
        if ticket is not None:
            row = build_outbound(
                ticket_id=ticket.id,
                ticket_number=ticket.number,
                customer_id=conversation.customer_id,
                identity=self.identity,
                secret=self.secret,
                domain=self.domain,
                kind=EmailKind.REPLY,
                to=[email.to],
                subject=email.subject,
                text=email.body,
                html=html_body,
                automatic=True,
                author_id=conversation.agent_id,
            )
        else:
            row = _ticketless_outbound(conversation, self.identity, self.domain, email, html_body)
        assert row.interaction is not None
        row.interaction.meta = {**row.interaction.meta, "chat_conversation_id": conversation.id}
        session.add(row)
        await session.flush()
        uow.record(interaction_logged(row.interaction))
        uow.record(await delivery_event(session, row))
        if ticket is not None:
            await add_participants(session, ticket.id, [email.to])
        return True
