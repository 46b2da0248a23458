"""Email through the running application: IMAP in (Dovecot), tickets, acknowledgments and agent
replies out (aiosmtpd), and the API to read a ticket's mail under the visibility rules."""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import EmailMessage, Ticket
from tests.conftest import Session, Staff
from tests.email_servers import Dovecot, SmtpSink, make_mail
from tests.support.mail_app import MailApp
from tests.support.waiting import eventually

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"


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
