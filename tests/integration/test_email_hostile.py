"""Mail nobody can stop intake with: NULs and other text the database refuses are made storable,
and a message that still cannot be stored is quarantined while the mailbox moves on."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import channels.email.imap as imap_channel
import contact_center.email.desk as email_desk
import crm_core.services.email_intake as email_intake
from channels.email.content_store import ContentStore
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.email_ports import InboundEmail
from crm_core.models import EmailMessage, Ticket
from crm_core.services.email_batch import ingest, ingest_batch
from crm_core.services.email_ingest import EmailPolicy, Ingested, MailboxPolicy, load_checkpoint
from tests.conftest import Staff
from tests.email_servers import Dovecot, make_mail
from tests.support.mail_app import MailApp
from tests.support.mailbox_watcher import watcher
from tests.support.waiting import eventually

NUL_BODY = (
    b"From: eve@example.org\r\nTo: support@example.com\r\nSubject: =?utf-8?q?nul=00subject?=\r\n"
    b"Message-ID: <nul-1@example.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nbefore=00after =E4=BD=A0=E5=A5=BD\r\n"
)
NUL_HTML = (
    b"From: =?utf-8?q?Eve=00?= <eve2@example.org>\r\nTo: support@example.com\r\n"
    b"Subject: html nul\r\nMessage-ID: <nul-2@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    b"Content-Language: e=00n\r\n\r\n<p>hi=00 there</p>\r\n"
)


async def test_nul_bytes_neither_block_the_mailbox_nor_reach_the_database(
    dovecot: Dovecot, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> None:
    user = "box-" + secrets.token_hex(4)
    await dovecot.append(user, NUL_BODY, NUL_HTML, make_mail(message_id="after-nul@example.org"))
    w = watcher(dovecot, uow_factory, ContentStore(tmp_path), user)
    assert await w.run_once() == 3
    async with uow_factory() as uow:
        rows = {
            m.message_key: m
            for m in (await uow.session.scalars(select(EmailMessage))).all()
            if m.message_key in ("nul-1@example.org", "nul-2@example.org", "after-nul@example.org")
        }
        assert set(rows) == {"nul-1@example.org", "nul-2@example.org", "after-nul@example.org"}
        first = rows["nul-1@example.org"]
        assert first.subject == "nulsubject"
        assert first.text_body is not None and "beforeafter 你好" in first.text_body
        assert first.ticket_id is not None
        ticket = await uow.session.get_one(Ticket, first.ticket_id)
        assert "\x00" not in ticket.subject
        html = rows["nul-2@example.org"]
        assert html.ticket_id is not None and "\x00" not in (html.html_body or "")
        _, last = await load_checkpoint(uow.session, "support")
    assert last == 3


POISON = "poison pill"


def crlf(mail: bytes) -> bytes:
    """As the IMAP server hands it out."""
    return mail.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def refuse_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message the database refuses for a reason nobody foresaw (injected: every known one is
    now handled), in the batch and one by one."""

    def check(mails: Sequence[InboundEmail]) -> None:
        if any(m.subject == POISON for m in mails):
            raise RuntimeError("the database refused the message")

    async def batch(
        uow: UnitOfWork, box: MailboxPolicy, policy: EmailPolicy, mails: Any, now: datetime | None = None
    ) -> list[Ingested]:
        check(mails)
        return await ingest_batch(uow, box, policy, mails, now)

    async def one(
        uow: UnitOfWork,
        box: MailboxPolicy,
        policy: EmailPolicy,
        mail: InboundEmail,
        now: datetime | None = None,
    ) -> Ingested:
        check([mail])
        return await ingest(uow, box, policy, mail, now)

    monkeypatch.setattr(email_intake, "ingest_batch", batch)
    monkeypatch.setattr(email_intake, "ingest", one)
    monkeypatch.setattr(email_desk, "ingest", one)


def unparseable(monkeypatch: pytest.MonkeyPatch, marker: bytes) -> None:
    real = imap_channel.parse_message

    def parse(raw: bytes, store: ContentStore, *, max_attachment_bytes: int) -> InboundEmail:
        if marker in raw:
            raise ValueError("the parser gave up")
        return real(raw, store, max_attachment_bytes=max_attachment_bytes)

    monkeypatch.setattr(imap_channel, "parse_message", parse)


async def test_a_message_that_cannot_be_stored_is_quarantined_and_retried_by_an_admin(
    mail_app: MailApp,
    uow_factory: UnitOfWorkFactory,
    staff: Staff,
    dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refuse_poison(monkeypatch)
    unparseable(monkeypatch, b"X-Unparseable: yes")
    poison = make_mail(subject=POISON, message_id="poison-1@example.org", body="你好, 请帮忙")
    broken = make_mail(message_id="broken-1@example.org", headers={"X-Unparseable": "yes"})
    after = make_mail(subject="after the poison", message_id="after-poison@example.org")
    await dovecot.append(mail_app.login, poison, broken, after)

    async def stored(key: str) -> EmailMessage | None:
        async with uow_factory() as uow:
            return await uow.session.scalar(select(EmailMessage).where(EmailMessage.message_key == key))

    # The mailbox moves on past both.
    assert (await eventually(lambda: stored("after-poison@example.org"))).ticket_id is not None
    assert await stored("poison-1@example.org") is None

    admin = await mail_app.sign_in(staff.admin)

    async def quarantined() -> list[dict[str, Any]]:
        resp = await admin.get("/api/v1/email-quarantine")
        assert resp.status == 200, await resp.text()
        items: list[dict[str, Any]] = (await resp.json())["items"]
        return items if len(items) == 2 else []

    items = {i["message_key"] or "unparsed": i for i in await eventually(quarantined)}
    assert set(items) == {"poison-1@example.org", "unparsed"}
    held = items["poison-1@example.org"]
    assert held["subject"] == POISON and held["mailbox"] == "support" and held["resolved_at"] is None
    assert "refused" in held["error"]
    assert "gave up" in items["unparsed"]["error"]
    resp = await admin.get(held["raw_url"])
    assert resp.status == 200 and resp.content_type == "message/rfc822" and await resp.read() == crlf(poison)
    resp = await admin.get(items["unparsed"]["raw_url"])
    assert resp.status == 200 and await resp.read() == crlf(broken)

    supervisor = await mail_app.sign_in(staff.red_lead)
    for method, path in (
        ("GET", "/api/v1/email-quarantine"),
        ("GET", held["raw_url"]),
        ("POST", f"/api/v1/email-quarantine/{held['id']}/retry"),
        ("DELETE", f"/api/v1/email-quarantine/{held['id']}"),
    ):
        assert (await supervisor.request(method, path)).status == 403, path

    # Still failing: the attempt is counted, the message stays quarantined.
    admin = await mail_app.sign_in(staff.admin)
    resp = await admin.post(f"/api/v1/email-quarantine/{held['id']}/retry")
    assert resp.status == 200, await resp.text()
    again = await resp.json()
    assert again["resolved_at"] is None and again["attempts"] == 2

    # Once the cause is gone, a retry stores it (exactly once) and resolves the entry.
    monkeypatch.undo()
    resp = await admin.post(f"/api/v1/email-quarantine/{held['id']}/retry")
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    email = await stored("poison-1@example.org")
    assert email is not None and email.ticket_id is not None and done["email_id"] == email.id
    assert done["resolved_at"] is not None
    resp = await admin.post(f"/api/v1/email-quarantine/{held['id']}/retry")
    assert resp.status == 409
    resp = await admin.delete(f"/api/v1/email-quarantine/{items['unparsed']['id']}")
    assert resp.status == 200 and (await resp.json())["resolved_at"] is not None
    resp = await admin.get("/api/v1/email-quarantine")
    assert (await resp.json())["items"] == []
    resp = await admin.get("/api/v1/email-quarantine?include_resolved=true")
    assert len((await resp.json())["items"]) == 2
