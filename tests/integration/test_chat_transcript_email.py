"""A chat transcript the visitor asked for goes out through the email outbox: composed (text and
escaped HTML), sent from the default mailbox to a real SMTP server (aiosmtpd), logged as an
outbound email on the chat's customer, its delivery state live on the agent's socket."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import ChatConversation, ChatTranscriptEmail, EmailMessage, EmailStatus, Interaction
from crm_core.types import Channel, Direction
from tests.conftest import Staff
from tests.email_servers import Dovecot, SmtpSink
from tests.support.agent_socket import agent_socket, next_of
from tests.support.agents import available
from tests.support.chat_visitor import ORIGIN, VisitorSocket, chat_settings
from tests.support.sessions import signed_in

HOSTILE = "<script>alert(1)</script> & more"


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    staff: Staff,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[TestClient[Any, Any]]:
    monkeypatch.setenv("CC_TEST_IMAP_PASSWORD", dovecot.password)
    configured = chat_settings(settings).with_overrides(
        email={
            "mailboxes": [
                {
                    "name": "support",
                    "address": "support@example.com",
                    "display_name": "Example Support",
                    "imap_host": dovecot.host,
                    "imap_port": dovecot.port,
                    "imap_tls": "none",
                    "login": "chat-" + secrets.token_hex(4),
                    "password_env": "CC_TEST_IMAP_PASSWORD",
                }
            ],
            "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "tls": "none"},
            "attachment_dir": str(tmp_path / "mail"),
            "outbox_poll_seconds": 30,  # the chat's end wakes the outbox: no waiting for a poll
        }
    )
    async with TestClient(TestServer(create_app(configured))) as test_client:
        yield test_client


async def test_the_transcript_is_emailed_from_the_default_mailbox_when_the_chat_ends(
    client: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory, smtp_sink: SmtpSink
) -> None:
    await available(client, staff.red_1)
    ws = await agent_socket(client, staff.red_1.login)
    visitor = await VisitorSocket.open(client, origin=ORIGIN)
    started = await visitor.start(name="Lin", email="lin@example.com", transcript=True)
    chat_id = started["conversation"]["id"]
    await visitor.next("assigned")
    await visitor.say(HOSTILE, "t-1")
    agent = await signed_in(client, staff.red_1)
    assert (await agent.post(f"/api/v1/chats/{chat_id}/messages", json={"text": "On its way."})).status == 201
    assert (await agent.post(f"/api/v1/chats/{chat_id}/close")).status == 200

    queued = await next_of(ws, "email.delivery")
    assert (queued["status"], queued["agent_id"]) == ("queued", staff.red_1.id)
    sent = await next_of(ws, "email.delivery", timeout=10)
    assert (sent["status"], sent["email_id"]) == ("sent", queued["email_id"])

    (mail,) = await smtp_sink.wait_for(1)
    assert mail.recipients == ["lin@example.com"]
    message = mail.message
    assert message["Subject"] == "Your chat transcript"
    assert message["From"].addresses[0].addr_spec == "support@example.com"
    assert message["Auto-Submitted"] == "auto-replied"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert f"Lin: {HOSTILE}" in text.get_content() and "Red-1: On its way." in text.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html.get_content()
    assert "<script>" not in html.get_content()

    async with uow_factory() as uow:
        conversation = await uow.session.get_one(ChatConversation, chat_id)
        email = await uow.session.get_one(EmailMessage, queued["email_id"])
        interaction = await uow.session.get_one(Interaction, email.interaction_id)
        ledger = (await uow.session.scalars(select(ChatTranscriptEmail))).one()
    assert email.status is EmailStatus.SENT and email.to_addresses == ["lin@example.com"]
    assert (email.customer_id, email.ticket_id) == (conversation.customer_id, conversation.ticket_id)
    assert (interaction.channel, interaction.direction, interaction.status) == (
        Channel.EMAIL,
        Direction.OUTBOUND,
        "sent",
    )
    assert interaction.customer_id == conversation.customer_id
    assert interaction.meta["chat_conversation_id"] == chat_id
    assert (ledger.conversation_id, ledger.status) == (chat_id, "queued")

    # Asking again changes nothing: one transcript per conversation.
    await visitor.send(type="transcript", email="lin@example.com")
    assert (await visitor.next("transcript"))["queued"] is False
    async with uow_factory() as uow:
        outbound = list(await uow.session.scalars(select(EmailMessage)))
    assert len(outbound) == 1
    await visitor.close()
    await ws.close()
