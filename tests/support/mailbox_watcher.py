"""A mailbox watcher on a real Dovecot as the email tests build it: its policy, and a fresh IMAP
login (a mailbox of its own) per test."""

from __future__ import annotations

import secrets

from channels.email.content_store import ContentStore
from channels.email.imap import ImapAccount, MailboxWatcher, WatchOptions
from crm_core.db import UnitOfWorkFactory
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_intake import EmailIntake
from crm_core.services.tickets import SlaPolicy
from tests.email_servers import Dovecot

POLICY = EmailPolicy(
    secret=b"imap-test-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com", "sales@example.com"}),
    sla=SlaPolicy(),
)


def watcher(
    dovecot: Dovecot,
    uow_factory: UnitOfWorkFactory,
    store: ContentStore,
    login: str,
    *,
    name: str = "support",
    after: str = "seen",
    move_to: str = "",
    port: int | None = None,
    **options: object,
) -> MailboxWatcher:
    account = ImapAccount(
        name=name,
        host=dovecot.host,
        port=port or dovecot.port,
        tls="none",
        login=login,
        password=dovecot.password,
        after=after,  # type: ignore[arg-type]
        move_to=move_to,
    )
    return MailboxWatcher(
        account,
        EmailIntake(uow_factory, MailboxPolicy(name=name, address=f"{name}@example.com"), POLICY),
        store,
        WatchOptions(backoff_min=0.05, backoff_max=0.2, **options),  # type: ignore[arg-type]
    )


def login() -> str:
    return "box-" + secrets.token_hex(4)
