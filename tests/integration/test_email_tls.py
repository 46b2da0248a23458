"""The email channel over TLS against real servers: Dovecot with IMAPS and STARTTLS, aiosmtpd with
STARTTLS and implicit TLS, all with certificates from a throw-away CA.

Verified against that CA through the CA file settings, mail flows; a server whose certificate is
not trusted (no CA file, another CA, another host name) is refused with a clear error and nothing
is lost: the message stays on the IMAP server, the outbound email stays queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import func, select

from channels.email.content_store import ContentStore
from channels.email.imap import ImapError, MailboxWatcher, WatchOptions
from channels.email.smtp import SmtpSender
from contact_center.email.wiring import imap_account, smtp_server
from contact_center.settings import ConfigError, MailboxSettings, Settings, load_settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailMessage, EmailStatus
from crm_core.services.email_ingest import MailboxPolicy
from crm_core.services.email_intake import EmailIntake
from crm_core.services.email_sending import deliver_due
from tests.email_servers import Dovecot, MailPki, SmtpSink, make_mail
from tests.support.email_outbox import FAST, email, new_ticket_with_ack
from tests.support.mailbox_watcher import POLICY as IMAP_POLICY
from tests.support.mailbox_watcher import login
from tests.support.waiting import eventually, free_port, until

Mode = Literal["ssl", "starttls"]
KEY = {"SECRET_KEY": "0123456789abcdef-secret"}


def watcher(
    dovecot: Dovecot,
    uow_factory: UnitOfWorkFactory,
    store: ContentStore,
    user: str,
    tls: Mode,
    ca_file: Path | None,
    options: WatchOptions | None = None,
) -> MailboxWatcher:
    """A watcher built the way the service builds it: from the mailbox settings."""
    settings = MailboxSettings(
        name="support",
        address="support@example.com",
        imap_host=dovecot.host,
        imap_port=dovecot.imaps_port if tls == "ssl" else dovecot.port,
        imap_tls=tls,
        imap_ca_file=ca_file,
        login=user,
        password=dovecot.password,
    )
    return MailboxWatcher(
        imap_account(settings),
        EmailIntake(uow_factory, MailboxPolicy(name="support", address="support@example.com"), IMAP_POLICY),
        store,
        options or WatchOptions(timeout=10),
    )


def sender(settings: Settings, sink: SmtpSink, store: ContentStore, ca_file: Path | None) -> SmtpSender:
    """A sender built the way the service builds it: from the smtp settings."""
    smtp = {"host": sink.host, "port": sink.port, "tls": sink.tls, "ca_file": ca_file, "timeout_seconds": 5}
    return SmtpSender(smtp_server(settings.with_overrides(email={"smtp": smtp})), store)


@contextmanager
def tls_sink(mode: Mode, pki: MailPki, *, other_host: bool = False) -> Iterator[SmtpSink]:
    sink = SmtpSink(
        "127.0.0.1", free_port(), tls=mode, server_context=pki.server_context(other_host=other_host)
    )
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


async def stored(uow_factory: UnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(EmailMessage)) or 0)


async def tls_logins(dovecot: Dovecot, user: str) -> int:
    """Dovecot writes its log from another process: wait for the line to arrive."""
    return int(await until(lambda: dovecot.tls_logins(user), what=f"Dovecot logs {user}'s TLS login"))


# Settings


def test_ca_files_are_read_from_the_settings_and_reach_the_clients(tmp_path: Path, mail_pki: MailPki) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        "[[email.mailboxes]]\n"
        'name = "support"\naddress = "support@example.com"\nlogin = "support"\n'
        f'imap_tls = "starttls"\nimap_ca_file = "{mail_pki.ca_file}"\n'
    )
    settings = load_settings(
        config, env={**KEY, "CONTACT_CENTER__EMAIL__SMTP__CA_FILE": str(mail_pki.ca_file)}
    )
    assert imap_account(settings.email.mailboxes[0]).ca_file == mail_pki.ca_file
    assert smtp_server(settings).ca_file == mail_pki.ca_file
    defaults = load_settings(env=KEY)
    assert defaults.email.smtp.ca_file is None and smtp_server(defaults).ca_file is None


@pytest.mark.parametrize("problem", ["missing", "directory", "not-a-certificate"])
def test_a_ca_file_that_cannot_serve_stops_the_service_naming_the_key(
    tmp_path: Path, mail_pki: MailPki, problem: str
) -> None:
    path = {
        "missing": tmp_path / "nowhere.pem",
        "directory": tmp_path,
        "not-a-certificate": mail_pki.key_file,
    }[problem]
    with pytest.raises(ConfigError, match=r"^email\.smtp\.ca_file: .*") as info:
        load_settings(env={**KEY, "CONTACT_CENTER__EMAIL__SMTP__CA_FILE": str(path)})
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    config = tmp_path / "site.toml"
    config.write_text(
        '[[email.mailboxes]]\nname = "support"\naddress = "support@example.com"\nlogin = "support"\n'
        f'imap_ca_file = "{path}"\n'
    )
    with pytest.raises(ConfigError, match=r"^email\.mailboxes\.0\.imap_ca_file: "):
        load_settings(config, env=KEY)


# IMAP


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
async def test_mail_is_fetched_over_tls_verified_with_the_ca_file(
    dovecot_tls: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path, mode: Mode
) -> None:
    user = login()
    await dovecot_tls.append(user, make_mail(message_id=f"tls-{mode}-1@example.org"), make_mail())
    w = watcher(dovecot_tls, uow_factory, ContentStore(tmp_path), user, mode, dovecot_tls.ca_file)
    assert await w.run_once() == 2
    assert await dovecot_tls.uids(user, criteria="UNSEEN") == []
    # The helpers above log in without TLS: the TLS login is the watcher's (after STARTTLS too).
    assert await tls_logins(dovecot_tls, user) >= 1


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
@pytest.mark.parametrize("trust", ["system", "another CA"])
async def test_an_untrusted_imap_server_is_refused_and_its_mail_stays(
    dovecot_tls: Dovecot,
    uow_factory: UnitOfWorkFactory,
    tmp_path: Path,
    mail_pki: MailPki,
    mode: Mode,
    trust: str,
) -> None:
    user = login()
    await dovecot_tls.append(user, make_mail(message_id=f"kept-{mode}@example.org"))
    store = ContentStore(tmp_path)
    ca = None if trust == "system" else mail_pki.ca_file
    with pytest.raises(ImapError, match=r"127\.0\.0\.1:\d+: TLS certificate not accepted: .*certificate"):
        await watcher(dovecot_tls, uow_factory, store, user, mode, ca).run_once()
    assert len(await dovecot_tls.uids(user, criteria="UNSEEN")) == 1
    assert await stored(uow_factory) == 0
    assert dovecot_tls.tls_logins(user) == 0
    # Trusting the right CA, the same mail comes in.
    assert await watcher(dovecot_tls, uow_factory, store, user, mode, dovecot_tls.ca_file).run_once() == 1


async def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    user = login()
    await dovecot.append(user, make_mail())
    with pytest.raises(ImapError, match=r"127\.0\.0\.1:\d+ does not offer STARTTLS"):
        await watcher(dovecot, uow_factory, ContentStore(tmp_path), user, "starttls", None).run_once()
    assert len(await dovecot.uids(user, criteria="UNSEEN")) == 1
    assert await stored(uow_factory) == 0


async def test_the_watcher_keeps_retrying_an_untrusted_server(
    dovecot_tls: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    user = login()
    await dovecot_tls.append(user, make_mail())
    options = WatchOptions(backoff_min=0.05, backoff_max=0.1, timeout=10)
    w = watcher(dovecot_tls, uow_factory, ContentStore(tmp_path), user, "ssl", None, options)
    task = asyncio.create_task(w.run())
    try:
        await until(lambda: w.failures >= 2, what="two failed connections")
        assert w.ingested == 0 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(await dovecot_tls.uids(user, criteria="UNSEEN")) == 1


# SMTP


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_mail_is_sent_over_tls_verified_with_the_ca_file(
    uow_factory: UnitOfWorkFactory, settings: Settings, mail_pki: MailPki, tmp_path: Path, mode: Mode
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, f"smtp-tls-{mode}@example.org")
    with tls_sink(mode, mail_pki) as sink:
        assert await deliver_due(uow_factory, sender(settings, sink, store, mail_pki.ca_file), FAST) == 1
        (received,) = await sink.wait_for(1)
    assert received.tls and received.recipients == ["ana@example.org"]
    row = await email(uow_factory, ack_id)
    assert received.message["Message-ID"] == f"<{row.message_id}>"
    assert row.status is EmailStatus.SENT and row.last_error is None


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_an_untrusted_smtp_server_is_refused_and_the_mail_stays_queued(
    uow_factory: UnitOfWorkFactory, settings: Settings, mail_pki: MailPki, tmp_path: Path, mode: Mode
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, f"smtp-untrusted-{mode}@example.org")
    with tls_sink(mode, mail_pki) as sink:
        assert await deliver_due(uow_factory, sender(settings, sink, store, None), FAST) == 1
        row = await email(uow_factory, ack_id)
        assert row.status is EmailStatus.QUEUED and row.attempts == 1
        assert f"127.0.0.1:{sink.port}: TLS certificate not accepted: " in (row.last_error or "")
        assert "local issuer certificate" in (row.last_error or "")
        assert sink.received == []
        # Once the CA file is set, the queued mail goes out at its next attempt.

        async def next_attempt() -> int:  # once the retry is due
            return await deliver_due(uow_factory, sender(settings, sink, store, mail_pki.ca_file), FAST)

        assert await eventually(next_attempt, what="the retry") == 1
        await sink.wait_for(1)
    row = await email(uow_factory, ack_id)
    assert row.status is EmailStatus.SENT and row.attempts == 2


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_a_certificate_for_another_host_is_refused(
    uow_factory: UnitOfWorkFactory, settings: Settings, mail_pki: MailPki, tmp_path: Path, mode: Mode
) -> None:
    store = ContentStore(tmp_path)
    ack_id = await new_ticket_with_ack(uow_factory, store, f"smtp-hostname-{mode}@example.org")
    with tls_sink(mode, mail_pki, other_host=True) as sink:
        await deliver_due(uow_factory, sender(settings, sink, store, mail_pki.ca_file), FAST)
        assert sink.received == []
    row = await email(uow_factory, ack_id)
    assert row.status is EmailStatus.QUEUED
    assert "mismatch, certificate is not valid for '127.0.0.1'" in (row.last_error or "")
