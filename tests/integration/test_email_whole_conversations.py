"""A conversation already whole in the inbox when the service starts (a customer's message and
their replies to it, in one IMAP batch, in mailbox order or not): one ticket holds every message,
one "ticket opened" is announced and one acknowledgment goes out."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import EmailKind, EmailMessage, Ticket
from tests.conftest import Staff
from tests.email_servers import Dovecot, SmtpSink, make_mail
from tests.support.mail_app import PASSWORD_ENV, mail_settings
from tests.support.waiting import eventually

# (Message-ID, In-Reply-To, References) in the order they are put in the inbox (UID order).
CASES: dict[str, list[tuple[str, str | None, str | None]]] = {
    "a message and its reply": [("m1", None, None), ("m2", "m1", None)],
    "a reply by References only": [("m1", None, None), ("m2", None, "<m1>")],
    "a chain of three": [("m1", None, None), ("m2", "m1", "<m1>"), ("m3", "m2", "<m1> <m2>")],
    "the reply first": [("m2", "m1", "<m1>"), ("m1", None, None)],
    "a chain backwards": [("m3", "m2", "<m1> <m2>"), ("m2", "m1", "<m1>"), ("m1", None, None)],
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_conversation_in_one_batch_is_one_ticket(
    case: str,
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    staff: Staff,
    dovecot: Dovecot,
    smtp_sink: SmtpSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    login = "whole-" + secrets.token_hex(4)
    tag = secrets.token_hex(4)

    def mid(name: str | None) -> str | None:
        return f"{name}.{tag}@example.org" if name else None

    def refs(value: str | None) -> str | None:
        return " ".join(f"<{mid(r.strip('<>'))}>" for r in value.split()) if value else None

    conversation = CASES[case]
    await dovecot.append(
        login,
        *(
            make_mail(
                subject="Re: Broken order" if parent or references else "Broken order",
                message_id=mid(name),
                in_reply_to=mid(parent),
                references=refs(references),
            )
            for name, parent, references in conversation
        ),
    )
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    app = create_app(mail_settings(settings, dovecot, smtp_sink, login, staff.red.id, tmp_path))
    announced: list[DomainEvent] = []

    async def listen(app: web.Application) -> None:
        async def record(event: DomainEvent) -> None:
            announced.append(event)

        app[RUNTIME].bus.subscribe(record)  # after start-up's contexts, before any mail is read

    app.on_startup.append(listen)
    keys = {str(mid(name)) for name, _, _ in conversation}

    async def stored() -> list[Any]:
        async with uow_factory() as uow:
            rows = await uow.session.execute(
                select(EmailMessage.message_key, EmailMessage.ticket_id, EmailMessage.kind)
            )
            return list(rows.all())

    async def all_stored_and_acknowledged() -> bool:
        rows = await stored()
        return {k for k, _, _ in rows} >= keys and len(smtp_sink.received) >= 1

    async with TestClient(TestServer(app)):
        await eventually(all_stored_and_acknowledged, 20, "the conversation is stored and acknowledged")
        await asyncio.sleep(0.5)  # time for anything more to be announced or sent
    rows = await stored()
    async with uow_factory() as uow:
        tickets = list(await uow.session.scalars(select(Ticket)))
    assert len(tickets) == 1, [(t.number, t.subject) for t in tickets]
    assert {k for k, t, kind in rows if kind is EmailKind.MESSAGE and t == tickets[0].id} == keys
    assert [kind for _, _, kind in rows].count(EmailKind.ACKNOWLEDGMENT) == 1
    assert [e.name for e in announced].count("ticket.opened") == 1
    assert len(smtp_sink.received) == 1
