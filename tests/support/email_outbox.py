"""The email outbox as its tests drive it: a ticket opened by a mail with an acknowledgment queued,
an SMTP sender to a loopback server, a retry policy in fractions of a second."""

from __future__ import annotations

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from channels.email.smtp import SmtpSender, SmtpServer
from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailMessage
from crm_core.services.email_batch import ingest
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.tickets import SlaPolicy
from tests.email_servers import make_mail

POLICY = EmailPolicy(
    secret=b"smtp-test-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
)
SUPPORT = MailboxPolicy(name="support", address="support@example.com", display_name="Example Support")
FAST = RetryPolicy(base_seconds=0.05, max_seconds=0.2, max_attempts=4, lease_seconds=30)


def sender(port: int, store: ContentStore) -> SmtpSender:
    return SmtpSender(SmtpServer("127.0.0.1", port, "none", timeout=5), store)


async def new_ticket_with_ack(uow_factory: UnitOfWorkFactory, store: ContentStore, message_id: str) -> int:
    mail = parse_message(make_mail(message_id=message_id), store, max_attachment_bytes=10_000)
    async with uow_factory() as uow:
        result = await ingest(uow, SUPPORT, POLICY, mail)
        await uow.commit()
    assert result.acknowledgment_id is not None
    return result.acknowledgment_id


async def email(uow_factory: UnitOfWorkFactory, email_id: int) -> EmailMessage:
    async with uow_factory() as uow:
        return await uow.session.get_one(EmailMessage, email_id)
