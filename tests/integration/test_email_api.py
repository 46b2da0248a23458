"""Email through the running application: IMAP in (Dovecot), tickets, acknowledgments and agent
replies out (aiosmtpd), and the API to read a ticket's mail under the visibility rules."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, EmailMessage, Ticket
from tests.conftest import PASSWORD, Session, Staff, isolated_settings
from tests.email_servers import Dovecot, SmtpSink, make_mail

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"


class MailApp:
    def __init__(self, client: TestClient[Any, Any], login: str) -> None:
        self.client = client
        self.login = login

    async def sign_in(self, agent: Agent) -> Session:
        resp = await self.client.post("/api/v1/auth/login", json={"login": agent.login, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        cookie = resp.cookies["cc_session"].value
        self.client.session.cookie_jar.clear()
        return Session(self.client, body["csrf_token"], cookie)


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
    configured = isolated_settings(settings).with_overrides(
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
                    "password_env": "CC_TEST_IMAP_PASSWORD",
                    "team_id": staff.red.id,
                    "acknowledgments": {
                        "en": {"subject": "Got it {{ subject_token }}", "body": "Ticket {{ ticket_number }}."}
                    },
                }
            ],
            "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "tls": "none"},
            "attachment_dir": str(tmp_path / "mail"),
            "poll_seconds": 0.2,
            "outbox_poll_seconds": 0.1,
            "reconnect_min_seconds": 0.1,
        }
    )
    monkeypatch.setenv("CC_TEST_IMAP_PASSWORD", dovecot.password)
    async with TestClient(TestServer(create_app(configured))) as client:
        yield MailApp(client, login)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_mail_to_ticket_acknowledgment_reply_and_downloads(
    mail_app: MailApp, uow_factory: UnitOfWorkFactory, staff: Staff, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    raw = (FIXTURES / "related_cid.eml").read_bytes()
    await dovecot.append(mail_app.login, raw)

    async def ticket() -> Ticket | None:
        async with uow_factory() as uow:
            return await uow.session.scalar(select(Ticket))

    opened: Ticket = await eventually(ticket)
    assert opened.team_id == staff.red.id
    (ack,) = await smtp_sink.wait_for(1)
    assert ack.message["Subject"] == f"Got it [#{opened.number}]"
    assert ack.message["In-Reply-To"] == "<rel-1@example.com.br>"

    agent = await mail_app.sign_in(staff.red_1)
    resp = await agent.get(f"/api/v1/tickets/{opened.id}/emails")
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert [i["kind"] for i in items] == ["message", "acknowledgment"]
    inbound = items[0]
    (image,) = inbound["attachments"]
    assert image["url"] in inbound["html"] and "cid:" not in inbound["html"]
    resp = await agent.get(image["url"])
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
    resp = await agent.get(inbound["raw_url"])
    assert resp.status == 200 and resp.content_type == "message/rfc822" and await resp.read() == raw
    await eventually(lambda: _status(agent, opened.id, 1, "sent"))

    stranger = await mail_app.sign_in(staff.blue_1)
    for path in (f"/api/v1/tickets/{opened.id}/emails", image["url"], inbound["raw_url"]):
        assert (await stranger.get(path)).status == 404, path

    resp = await agent.post(
        f"/api/v1/tickets/{opened.id}/emails",
        json={
            "text": "Thanks, fixed now.",
            "html": "<p>Thanks, <b>fixed</b> now.</p><script>x()</script>",
            "attachments": [
                {
                    "filename": "note.txt",
                    "content_type": "text/plain",
                    "content_base64": base64.b64encode(b"hi").decode(),
                }
            ],
        },
    )
    assert resp.status == 201, await resp.text()
    reply = await resp.json()
    assert reply["status"] in ("queued", "sending", "sent") and reply["kind"] == "reply"
    received = await smtp_sink.wait_for(2)
    sent = received[1].message
    assert sent["In-Reply-To"] == "<rel-1@example.com.br>"
    assert sent["Subject"] == f"Re: Screenshot of the error [#{opened.number}]"
    assert "<script>" not in (sent.get_body(("html",)) or sent).get_content()
    assert [a.get_filename() for a in sent.iter_attachments()] == ["note.txt"]
    await eventually(lambda: _status(agent, opened.id, 2, "sent"))
    resp = await agent.get(f"/api/v1/emails/{reply['id']}/raw")
    assert resp.status == 200 and reply["message_id"].encode() in await resp.read()

    # The customer answers our reply: threaded onto the same ticket by In-Reply-To.
    await dovecot.append(
        mail_app.login,
        make_mail(
            sender="carla@example.com.br",
            subject="Re: thanks",
            message_id="rel-2@example.com.br",
            in_reply_to=reply["message_id"],
        ),
    )

    async def threaded() -> bool:
        async with uow_factory() as uow:
            row = await uow.session.scalar(
                select(EmailMessage).where(EmailMessage.message_key == "rel-2@example.com.br")
            )
            return row is not None and row.ticket_id == opened.id

    await eventually(threaded)


async def _status(agent: Session, ticket_id: int, index: int, status: str) -> bool:
    resp = await agent.get(f"/api/v1/tickets/{ticket_id}/emails")
    items = (await resp.json())["items"]
    return len(items) > index and items[index]["status"] == status


async def test_reply_validation_and_visibility(
    mail_app: MailApp, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    agent = await mail_app.sign_in(staff.red_1)
    resp = await agent.post("/api/v1/tickets/999999/emails", json={"text": "hello"})
    assert resp.status == 404
    resp = await agent.post("/api/v1/tickets/1/emails", json={"text": ""})
    assert resp.status == 422
    resp = await agent.post(
        "/api/v1/tickets/1/emails",
        json={"text": "x", "attachments": [{"filename": "a", "content_base64": "%%%"}]},
    )
    assert resp.status == 422
    assert (await agent.get("/api/v1/email-attachments/424242")).status == 404
    assert (await agent.get("/api/v1/emails/424242/raw")).status == 404
