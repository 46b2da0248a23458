"""Wiring of email: the settings made into policies, the desk, and what runs while the
application does (one IMAP watcher per configured mailbox, handing mail to the core's intake,
and the outbox sender), all on the runtime's background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web

from channels.email.content_store import ContentStore
from channels.email.imap import ImapAccount, MailboxWatcher, WatchOptions
from channels.email.smtp import SmtpSender, SmtpServer
from contact_center.appkeys import RUNTIME
from contact_center.email.desk import EMAIL_DESK, EmailDesk
from contact_center.observability.metrics import MAILBOXES
from contact_center.settings import MailboxSettings, Settings
from contact_center.throttle import throttle
from crm_core.db import UnitOfWork
from crm_core.email_ports import MailTransport
from crm_core.outbox.steps import UNLIMITED, Throttle
from crm_core.ports import Clock
from crm_core.services.email_acks import AckTemplate
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_intake import EmailIntake
from crm_core.services.email_outbound import RetryPolicy
from crm_core.services.email_sending import SYSTEM_CLOCK, deliver_due
from crm_core.services.transcript_email import EmailOutboxTranscriptMailer

log = logging.getLogger(__name__)


def _domain(settings: Settings) -> str:
    if settings.email.message_id_domain:
        return settings.email.message_id_domain
    if settings.email.mailboxes:
        return settings.email.mailboxes[0].address.rpartition("@")[2].lower()
    return "contact-center.invalid"


def email_policy(settings: Settings) -> EmailPolicy:
    mail = settings.email
    return EmailPolicy(
        secret=settings.security.secret_key.get_secret_value().encode(),
        domain=_domain(settings),
        our_addresses=frozenset(m.address.lower() for m in mail.mailboxes),
        sla=settings.crm.sla_policy(),
        subject_token=mail.subject_token,
        reopen_window=timedelta(hours=mail.reopen_window_hours),
        acks_per_hour=mail.acks_per_sender_per_hour,
    )


def mailbox_policy(mailbox: MailboxSettings) -> MailboxPolicy:
    return MailboxPolicy(
        name=mailbox.name,
        address=mailbox.address.lower(),
        display_name=mailbox.display_name or None,
        team_id=mailbox.team_id,
        language=mailbox.language,
        acknowledge=mailbox.acknowledge,
        templates={lang: AckTemplate(t.subject, t.body) for lang, t in mailbox.acknowledgments.items()},
    )


def imap_account(mailbox: MailboxSettings) -> ImapAccount:
    return ImapAccount(
        name=mailbox.name,
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        tls=mailbox.imap_tls,
        login=mailbox.login,
        password=mailbox.imap_password(),
        folder=mailbox.folder,
        after=mailbox.after,
        move_to=mailbox.move_to,
        ca_file=mailbox.imap_ca_file,
    )


def watch_options(settings: Settings) -> WatchOptions:
    mail = settings.email
    return WatchOptions(
        max_attachment_bytes=mail.max_attachment_bytes,
        batch_size=mail.batch_size,
        poll_seconds=mail.poll_seconds,
        idle=mail.idle,
        idle_seconds=mail.idle_seconds,
        backoff_min=mail.reconnect_min_seconds,
        backoff_max=mail.reconnect_max_seconds,
        parse_processes=mail.parse_processes,
    )


def smtp_server(settings: Settings) -> SmtpServer:
    smtp = settings.email.smtp
    return SmtpServer(
        host=smtp.host,
        port=smtp.port,
        tls=smtp.tls,
        username=smtp.username,
        password=smtp.smtp_password(),
        timeout=smtp.timeout_seconds,
        ca_file=smtp.ca_file,
    )


def transcript_mailer(settings: Settings) -> EmailOutboxTranscriptMailer | None:
    """Chat transcripts through the email outbox, from the first mailbox; None without mailboxes
    (nothing would send them)."""
    if not settings.email.mailboxes:
        return None
    policy = email_policy(settings)
    identity = mailbox_policy(settings.email.mailboxes[0]).identity
    return EmailOutboxTranscriptMailer(identity, policy.secret, policy.domain)


def build_desk(settings: Settings) -> EmailDesk:
    mail = settings.email
    return EmailDesk(
        policy=email_policy(settings),
        mailboxes={m.name: mailbox_policy(m) for m in mail.mailboxes},
        store=ContentStore(mail.attachment_dir),
        retry=RetryPolicy(
            base_seconds=mail.retry_base_seconds,
            max_seconds=mail.retry_max_seconds,
            max_attempts=mail.max_attempts,
            lease_seconds=mail.claim_lease_seconds,
        ),
        settings=settings,
    )


async def run_outbox(
    desk: EmailDesk,
    uow_factory: Callable[[], UnitOfWork],
    transport: MailTransport,
    poll_seconds: float,
    sender_throttle: Throttle = UNLIMITED,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Deliver due mail until cancelled; sleeps until woken or the next poll when idle. Each
    sending address waits for its turn on ``sender_throttle``; what is due, leases and retries
    are read on ``clock``. The idle poll itself is a real wait (the loop's, not the clock's): it
    only bounds how late a round starts, and a simulated clock nobody advances must not stop
    the sender from noticing a wake-up."""
    while True:
        desk.outbox_wakeup.clear()
        try:
            attempted = await deliver_due(
                uow_factory, transport, desk.retry, throttle=sender_throttle, clock=clock
            )
        except Exception:
            log.exception("outbox round failed")
            attempted = 0
        if attempted == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(desk.outbox_wakeup.wait(), poll_seconds)


async def _email_ctx(app: web.Application) -> AsyncIterator[None]:
    desk = app[EMAIL_DESK]
    runtime = app[RUNTIME]
    settings = desk.settings
    options = watch_options(settings)
    watchers: list[MailboxWatcher] = []
    tasks: list[asyncio.Task[None]] = []
    for mailbox in settings.email.mailboxes:
        intake = EmailIntake(runtime.uow, desk.mailboxes[mailbox.name], desk.policy, clock=runtime.clock)
        watcher = MailboxWatcher(imap_account(mailbox), intake, desk.store, options)
        watchers.append(watcher)
        app[MAILBOXES].append(watcher)  # for /readyz and /metrics
        tasks.append(runtime.jobs.spawn(watcher.run(), f"imap-{mailbox.name}"))
    sender = SmtpSender(smtp_server(settings), desk.store)
    paced = throttle(settings.email.max_per_minute / 60, runtime.redis, f"{settings.redis.key_prefix}email:")
    outbox = run_outbox(desk, runtime.uow, sender, settings.email.outbox_poll_seconds, paced, runtime.clock)
    tasks.append(runtime.jobs.spawn(outbox, "email-outbox"))
    log.info("email: %d mailbox(es) watched, outbox via %r", len(settings.email.mailboxes), sender.server)
    try:
        yield
    finally:
        # Stopped here, before the runtime's other tasks: the parsing processes go with them.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watcher in watchers:
            watcher.close()


def setup_email(app: web.Application, settings: Settings) -> None:
    """Must come after the runtime in ``cleanup_ctx``; background work only with mailboxes."""
    app[EMAIL_DESK] = build_desk(settings)
    if settings.email.mailboxes:
        app.cleanup_ctx.append(_email_ctx)
