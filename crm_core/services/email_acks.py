"""Automatic acknowledgments: sandboxed Jinja2 templates per mailbox and language, whether a
message that opened a ticket is acknowledged, and the one place that writes acknowledgments (for
the batch and the single-message ingest path alike)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.email_ports import InboundEmail
from crm_core.errors import InvalidInput
from crm_core.models import EmailAddressHealth, EmailKind, EmailMessage, Ticket
from crm_core.rules.email_refs import subject_token, with_token
from crm_core.services.email_outbound import EmailDraft, queue_emails
from crm_core.services.tickets import system_note

if TYPE_CHECKING:  # the policies name the templates: imported for annotations only
    from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy


@dataclass(frozen=True, slots=True)
class AckTemplate:
    subject: str
    body: str


BUILT_IN: Mapping[str, AckTemplate] = {
    "en": AckTemplate(
        subject="We received your request {{ subject_token }}",
        body=(
            "Hello {{ customer_name }},\n\n"
            "thank you for writing to us. Your request is ticket {{ ticket_number }} and we will answer "
            "as soon as we can.\nPlease keep {{ subject_token }} in the subject when you write about it.\n"
        ),
    ),
    "de": AckTemplate(
        subject="Wir haben Ihre Anfrage erhalten {{ subject_token }}",
        body=(
            "Guten Tag {{ customer_name }},\n\n"
            "vielen Dank für Ihre Nachricht. Ihre Anfrage hat die Nummer {{ ticket_number }}; wir antworten "
            "so bald wie möglich.\nBitte lassen Sie {{ subject_token }} im Betreff, "
            "wenn Sie dazu schreiben.\n"
        ),
    ),
    "es": AckTemplate(
        subject="Hemos recibido su solicitud {{ subject_token }}",
        body=(
            "Hola {{ customer_name }}:\n\n"
            "gracias por escribirnos. Su solicitud es el ticket {{ ticket_number }} y le responderemos lo "
            "antes posible.\nConserve {{ subject_token }} en el asunto cuando nos escriba sobre ella.\n"
        ),
    ),
}

_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def pick_template(
    templates: Mapping[str, AckTemplate], languages: list[str | None], default_language: str
) -> AckTemplate:
    """The first language (customer's, the mail's, the mailbox's) with a template, then English."""
    candidates = [lang.lower() for lang in languages if lang] + [default_language.lower(), "en"]
    for lang in candidates:
        for name in (lang, lang.split("-")[0]):
            if name in templates:
                return templates[name]
            if name in BUILT_IN:
                return BUILT_IN[name]
    return BUILT_IN["en"]


def render(template: AckTemplate, context: Mapping[str, object]) -> tuple[str, str]:
    """Subject and body; a template error (or an attempt to escape the sandbox) is InvalidInput."""
    try:
        subject = _compiled(template.subject).render(**context)
        body = _compiled(template.body).render(**context)
    except TemplateError as exc:
        raise InvalidInput(f"acknowledgment template: {exc}") from exc
    return " ".join(subject.split()), body


def acknowledgment_text(
    ticket: Ticket,
    customer_name: str,
    customer_language: str | None,
    mail: InboundEmail,
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
) -> tuple[str, str]:
    """Subject (with the ticket token) and body of the acknowledgment; InvalidInput if the
    mailbox's template cannot be rendered."""
    template = pick_template(mailbox.templates, [customer_language, mail.language], mailbox.language)
    subject, body = render(
        template,
        {
            "ticket_number": ticket.number,
            "subject_token": subject_token(ticket.number, policy.subject_token),
            "subject": ticket.subject,
            "customer_name": customer_name,
            "mailbox": mailbox.name,
        },
    )
    return with_token(subject, ticket.number, policy.subject_token), body


def may_acknowledge(
    mailbox: MailboxPolicy, policy: EmailPolicy, sender: str, *, failing: bool, sent_last_hour: int
) -> bool:
    """Whether a message that opened a ticket is acknowledged: the mailbox acknowledges, the
    sender's address is not failing and has had fewer than ``acks_per_hour`` in the last hour."""
    return mailbox.acknowledge and bool(sender) and not failing and sent_last_hour < policy.acks_per_hour


async def acknowledgment_facts(
    session: AsyncSession, senders: Collection[str], *, now: datetime
) -> tuple[set[str], dict[str, int]]:
    """Of these (lower-cased) senders: those whose address is failing, and how many
    acknowledgments each was sent in the hour before ``now``."""
    if not senders:
        return set(), {}
    failing = set(
        await session.scalars(
            select(EmailAddressHealth.address).where(
                EmailAddressHealth.address.in_(senders), EmailAddressHealth.failing.is_(True)
            )
        )
    )
    rows = await session.execute(
        select(EmailMessage.recipient, func.count())
        .where(
            EmailMessage.recipient.in_(senders),
            EmailMessage.kind == EmailKind.ACKNOWLEDGMENT,
            EmailMessage.created_at >= now - timedelta(hours=1),
        )
        .group_by(EmailMessage.recipient)
    )
    return failing, {r: int(c) for r, c in rows.all() if r is not None}


@dataclass(frozen=True, slots=True)
class AckRequest:
    """A message that opened ``ticket`` and is to be acknowledged, with whom it is written to."""

    ticket: Ticket
    customer_name: str
    customer_language: str | None
    mail: InboundEmail


async def write_acknowledgments(
    uow: UnitOfWork,
    requests: Sequence[AckRequest],
    mailbox: MailboxPolicy,
    policy: EmailPolicy,
    now: datetime | None = None,
) -> list[EmailMessage | None]:
    """Queue the acknowledgments in the outbox by :func:`queue_emails` (in the caller's
    transaction, written at ``now``), one per request in order: the reply to the message, from
    the mailbox, with the ticket's token. A template that cannot be rendered leaves a note on the
    ticket instead (None in its place)."""
    drafts: list[EmailDraft] = []
    drafted: list[int] = []  # the index of each draft's request
    unsent: list[tuple[Ticket, str]] = []
    for request in requests:
        ticket, mail = request.ticket, request.mail
        try:
            subject, body = acknowledgment_text(
                ticket, request.customer_name, request.customer_language, mail, mailbox, policy
            )
        except InvalidInput as exc:
            unsent.append((ticket, f"No acknowledgment sent: {exc}"))
            continue
        message_id = mail.message_id
        drafted.append(len(drafted) + len(unsent))
        drafts.append(
            EmailDraft(
                identity=mailbox.identity,
                kind=EmailKind.ACKNOWLEDGMENT,
                to=[(mail.from_address or "").lower()],
                subject=subject,
                text=body,
                ticket=ticket,
                in_reply_to=message_id,
                references=[*mail.references, *([message_id] if message_id else [])],
                automatic=True,
            )
        )
    written = await queue_emails(
        uow, drafts, secret=policy.secret, domain=policy.domain, announce=False, now=now
    )
    acks: list[EmailMessage | None] = [None] * len(requests)
    for index, ack in zip(drafted, written, strict=True):
        acks[index] = ack
    for ticket, note in unsent:
        await system_note(uow, ticket, note)
    return acks
