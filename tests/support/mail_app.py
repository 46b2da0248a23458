"""The running application wired to a real Dovecot mailbox and an aiosmtpd sink."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent
from tests.conftest import Staff, isolated_settings
from tests.email_servers import Dovecot, SmtpSink
from tests.support.sessions import Session, signed_in


class MailApp:
    def __init__(self, client: TestClient[Any, Any], login: str) -> None:
        self.client = client
        self.login = login

    async def sign_in(self, agent: Agent) -> Session:
        return await signed_in(self.client, agent)


PASSWORD_ENV = "CC_TEST_IMAP_PASSWORD"


def mail_settings(
    settings: Settings,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    login: str,
    team_id: int,
    var: Path,
    **email: Any,
) -> Settings:
    """The run's settings with one mailbox ("support", mail for ``login`` on Dovecot, its password
    in ``PASSWORD_ENV``), outbound mail to the sink, quick polling and retries; ``email`` overrides."""
    return isolated_settings(settings).with_overrides(
        email={
            "mailboxes": [
                {
                    "name": "support",
                    "address": "support@example.com",
                    "display_name": "Example Support",
                    "imap_host": dovecot.host,
                    "imap_port": dovecot.port,
                    "imap_tls": "none",
                    "login": login,
                    "password_env": PASSWORD_ENV,
                    "team_id": team_id,
                    "acknowledgments": {
                        "en": {"subject": "Got it {{ subject_token }}", "body": "Ticket {{ ticket_number }}."}
                    },
                }
            ],
            "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "tls": "none"},
            "attachment_dir": str(var / "mail"),
            "poll_seconds": 0.2,
            "outbox_poll_seconds": 0.1,
            "reconnect_min_seconds": 0.1,
            **email,
        }
    )


@pytest_asyncio.fixture(loop_scope="session")
async def mail_app(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    staff: Staff,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MailApp]:
    login = "api-" + secrets.token_hex(4)
    configured = mail_settings(settings, dovecot, smtp_sink, login, staff.red.id, tmp_path)
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    async with TestClient(TestServer(create_app(configured))) as client:
        yield MailApp(client, login)
