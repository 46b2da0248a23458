"""A ticket's mail for agents: reading it (under the visibility rules) and replying by email."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.email_ports import MailAttachment
from crm_core.errors import InvalidInput, NotFound
from crm_core.models import (
    CustomerEmail,
    EmailAttachment,
    EmailKind,
    EmailMessage,
)
from crm_core.rules.email_refs import with_token
from crm_core.services.audit import audit
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_outbound import queue_email
from crm_core.services.tickets import get_ticket
from crm_core.types import Direction
from crm_core.visibility import Viewer

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|antw|fw|fwd|wg)\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TicketMail:
    email: EmailMessage
    attachments: Sequence[EmailAttachment]


async def list_ticket_emails(session: AsyncSession, viewer: Viewer, ticket_id: int) -> list[TicketMail]:
    await get_ticket(session, viewer, ticket_id)
    emails = list(
        await session.scalars(
            select(EmailMessage).where(EmailMessage.ticket_id == ticket_id).order_by(EmailMessage.id)
        )
    )
    attachments: dict[int, list[EmailAttachment]] = {}
    if emails:
        rows = await session.scalars(
            select(EmailAttachment)
            .where(EmailAttachment.email_id.in_([e.id for e in emails]))
            .order_by(EmailAttachment.id)
        )
        for row in rows:
            attachments.setdefault(row.email_id, []).append(row)
    return [TicketMail(e, attachments.get(e.id, [])) for e in emails]


async def get_email(session: AsyncSession, viewer: Viewer, email_id: int) -> EmailMessage:
    """A message the viewer may read: one on a ticket they see (mail on no ticket: admins only)."""
    email = await session.get(EmailMessage, email_id)
    if email is None or (email.ticket_id is None and not viewer.is_admin):
        raise NotFound(f"email {email_id} not found")
    if email.ticket_id is not None:
        try:
            await get_ticket(session, viewer, email.ticket_id)
        except NotFound:
            raise NotFound(f"email {email_id} not found") from None
    return email


async def get_attachment(
    session: AsyncSession, viewer: Viewer, attachment_id: int
) -> tuple[EmailAttachment, EmailMessage]:
    attachment = await session.get(EmailAttachment, attachment_id)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found")
    try:
        email = await get_email(session, viewer, attachment.email_id)
    except NotFound:
        raise NotFound(f"attachment {attachment_id} not found") from None
    return attachment, email


async def reply_by_email(
    uow: UnitOfWork,
    viewer: Viewer,
    ticket_id: int,
    *,
    text: str,
    policy: EmailPolicy,
    mailboxes: Mapping[str, MailboxPolicy],
    html: str | None = None,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    mailbox: str | None = None,
    attachments: Sequence[MailAttachment] = (),
    now: datetime | None = None,
) -> EmailMessage:
    """Queue an agent's answer at ``now`` (the current time by default): to the last sender (or
    the customer), from the mailbox the conversation came in on, threaded after the last inbound
    message."""
    session = uow.session
    if not text.strip():
        raise InvalidInput("the reply is empty", "text")
    if not mailboxes:
        raise InvalidInput("no mailbox is configured to send from", "mailbox")
    ticket = await get_ticket(session, viewer, ticket_id, for_update=True)
    last = await session.scalar(
        select(EmailMessage)
        .where(
            EmailMessage.ticket_id == ticket.id,
            EmailMessage.direction == Direction.INBOUND,
            EmailMessage.kind == EmailKind.MESSAGE,
        )
        .order_by(EmailMessage.id.desc())
        .limit(1)
    )
    name = mailbox or (last.mailbox if last is not None else None) or next(iter(mailboxes))
    if name not in mailboxes:
        raise InvalidInput(f"unknown mailbox {name!r}; use one of: {', '.join(mailboxes)}", "mailbox")
    recipients = [a.strip().lower() for a in to if a.strip()]
    if not recipients and last is not None and last.from_address:
        recipients = [last.from_address]
    if not recipients:
        address = await session.scalar(
            select(CustomerEmail.address)
            .where(CustomerEmail.customer_id == ticket.customer_id)
            .order_by(CustomerEmail.id)
            .limit(1)
        )
        if address is None:
            raise InvalidInput("the customer has no email address; give one in 'to'", "to")
        recipients = [address]
    for address in [*recipients, *cc]:
        if "@" not in address or any(c in address for c in " <>,;\r\n"):
            raise InvalidInput(f"not an email address: {address!r}", "to")
    base = _REPLY_PREFIX.sub("", last.subject if last is not None and last.subject else ticket.subject)
    subject = with_token(f"Re: {base}".strip(), ticket.number, policy.subject_token)
    references: list[str] = []
    if last is not None:
        references = [*last.reference_ids, *([last.message_id] if last.message_id else [])]
    email = await queue_email(
        uow,
        ticket=ticket,
        identity=mailboxes[name].identity,
        secret=policy.secret,
        domain=policy.domain,
        kind=EmailKind.REPLY,
        to=recipients,
        cc=[c.strip().lower() for c in cc],
        subject=subject,
        text=text,
        html=html,
        in_reply_to=last.message_id if last is not None else None,
        references=references,
        author_id=viewer.agent_id,
        attachments=attachments,
        now=now,
    )
    now = email.created_at
    ticket.updated_at = now
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
    await session.flush()
    audit(session, "ticket", ticket.id, "emailed", viewer.agent_id, {"email_id": email.id, "to": recipients})
    return email
