"""Agents text from a ticket: outbox first, then the gateway (the sandbox over HTTP), delivery
receipts move the message forward only and reach the agent's socket; bad numbers, bodies and
other agents' tickets are refused before anything is sent."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import CustomerPhone, Interaction, SmsMessage, Ticket
from crm_core.services.sms_outbound import queue_sms
from crm_core.types import Channel, Direction
from tests.conftest import Staff
from tests.support.agent_socket import agent_socket, next_of
from tests.support.sessions import signed_in
from tests.support.sms import (
    OUR_NUMBER,
    TEXTER,
    Twilio,
    customer_with_phone,
    message_sid,
    sandbox_messages,
    sms_rows,
    sms_ticket,
    start_service,
)
from tests.support.waiting import eventually


async def row(uow_factory: UnitOfWorkFactory, message_id: int) -> SmsMessage:
    async with uow_factory() as uow:
        return await uow.session.get_one(SmsMessage, message_id)


async def test_a_reply_is_sent_delivered_and_shown_live(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    ws = await agent_socket(service, staff.red_1.login)
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(
        f"/api/v1/tickets/{ticket_id}/sms", json={"body": "On its way 🚚, arrives Friday"}
    )
    assert resp.status == 201, await resp.text()
    sent = await resp.json()
    assert sent["message_sid"].startswith("SM") and sent["status"] in ("queued", "sent", "delivered")
    assert (sent["to_number"], sent["from_number"], sent["direction"]) == (TEXTER, OUR_NUMBER, "outbound")
    assert (sent["encoding"], sent["segments"], sent["agent_id"]) == ("UCS-2", 1, staff.red_1.id)
    delivered = await next_of(ws, "sms.status", status="delivered")
    assert delivered["agent_id"] == staff.red_1.id and delivered["message_id"] == sent["id"]
    assert delivered["message_sid"] == sent["message_sid"] and delivered["ticket_id"] == ticket_id
    stored = await row(uow_factory, sent["id"])
    assert stored.status == "delivered" and stored.sent_at is not None
    async with uow_factory() as uow:
        interaction = await uow.session.get_one(Interaction, stored.interaction_id)
        ticket = await uow.session.get_one(Ticket, ticket_id)
    assert (interaction.channel, interaction.direction, interaction.external_id) == (
        Channel.SMS,
        Direction.OUTBOUND,
        sent["message_sid"],
    )
    assert (interaction.ticket_id, interaction.agent_id, interaction.status) == (
        ticket_id,
        staff.red_1.id,
        "delivered",
    )
    assert interaction.meta["segments"] == 1 and interaction.meta["encoding"] == "UCS-2"
    assert ticket.first_responded_at is not None
    listed = await (await agent.get(f"/api/v1/tickets/{ticket_id}/sms")).json()
    assert [(m["direction"], m["status"]) for m in listed["items"]] == [
        ("inbound", "received"),
        ("outbound", "delivered"),
    ]
    (at_twilio,) = await sandbox_messages(service, TEXTER)
    assert at_twilio["sid"] == sent["message_sid"] and at_twilio["body"] == "On its way 🚚, arrives Friday"
    assert not [e for e in at_twilio["log"] if e["event"] == "error"], at_twilio["log"]  # receipts verified
    await ws.close()


async def test_long_texts_store_their_segments(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    agent = await signed_in(service, staff.red_1)
    resp = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "x" * 155 + "{}[]"})
    assert (await resp.json())["encoding"] == "GSM-7" and (await resp.json())["segments"] == 2


async def test_other_agents_tickets_bad_numbers_and_bodies_are_refused_before_sending(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    outsider = await signed_in(service, staff.blue_1)
    assert (await outsider.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "hi"})).status == 404
    assert (await outsider.get(f"/api/v1/tickets/{ticket_id}/sms")).status == 404
    agent = await signed_in(service, staff.red_1)
    for payload, field in (
        ({"body": "hi", "to": "12345"}, "to"),
        ({"body": "hi", "to": "not a number"}, "to"),
        ({"body": "hi", "to": "+1 202 555 0199"}, "to"),  # valid, but not this customer's number
        ({"body": "   "}, "body"),
        ({"body": ""}, "body"),
        ({"body": "x" * 1601}, "body"),
    ):
        resp = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json=payload)
        assert resp.status == 422, (payload, await resp.text())
        assert field in (await resp.json())["error"]["fields"], await resp.text()
    # A customer without a phone number cannot be texted.
    created = await agent.post("/api/v1/customers", json={"display_name": "No Phone"})
    customer_id = (await created.json())["id"]
    opened = await agent.post(
        "/api/v1/tickets", json={"customer_id": customer_id, "subject": "x", "assignee_id": staff.red_1.id}
    )
    resp = await agent.post(f"/api/v1/tickets/{(await opened.json())['id']}/sms", json={"body": "hi"})
    assert resp.status == 422 and "to" in (await resp.json())["error"]["fields"]
    assert [r.direction for r in await sms_rows(uow_factory)] == [Direction.INBOUND]
    assert await sandbox_messages(service, TEXTER) == []


async def test_the_same_idempotency_key_sends_once(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    agent = await signed_in(service, staff.red_1)
    headers = {"Idempotency-Key": "reply-1"}
    first = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Hello"}, headers=headers)
    again = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Hello"}, headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert len(await sandbox_messages(service, TEXTER)) == 1


async def test_an_idempotency_key_reused_for_another_text_is_refused(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    customer_id = (await sms_rows(uow_factory))[0].customer_id
    async with uow_factory() as uow:
        uow.session.add(CustomerPhone(customer_id=customer_id, e164="+12025550177"))
        await uow.commit()
    other = await customer_with_phone(uow_factory, "+12025550188", owner_id=staff.red_1.id)
    agent = await signed_in(service, staff.red_1)
    headers = {"Idempotency-Key": "reply-2"}
    first = await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Hello"}, headers=headers)
    assert first.status == 201
    for path, payload in (
        (f"/api/v1/tickets/{ticket_id}/sms", {"body": "Goodbye"}),
        (f"/api/v1/tickets/{ticket_id}/sms", {"body": "Hello", "to": "+12025550177"}),
        (f"/api/v1/customers/{other}/sms", {"body": "Hello"}),
    ):
        resp = await agent.post(path, json=payload, headers=headers)
        assert resp.status == 422, (payload, await resp.text())
        error = (await resp.json())["error"]
        assert (error["status"], error["code"]) == (422, "idempotency_key_reused")
        assert "reply-2" in error["message"] and "Idempotency-Key" in error["fields"]
    # The same text again (the number written another way, whitespace around the body): the first.
    again = await agent.post(
        f"/api/v1/tickets/{ticket_id}/sms", json={"body": " Hello ", "to": "(202) 555-0143"}, headers=headers
    )
    assert again.status == 200 and (await again.json())["id"] == (await first.json())["id"]
    # Keys are each agent's own: another agent may use the same one for their own text.
    theirs = await customer_with_phone(uow_factory, "+12025550199", owner_id=staff.red_2.id)
    colleague = await signed_in(service, staff.red_2)
    resp = await colleague.post(f"/api/v1/customers/{theirs}/sms", json={"body": "Bye"}, headers=headers)
    assert resp.status == 201, await resp.text()
    assert [m["body"] for m in await sandbox_messages(service, TEXTER)] == ["Hello"]
    assert [m["body"] for m in await sandbox_messages(service, "+12025550199")] == ["Bye"]


async def test_the_same_key_twice_at_once_sends_once(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await customer_with_phone(uow_factory, owner_id=staff.red_1.id)
    agent = await signed_in(service, staff.red_1)
    headers = {"Idempotency-Key": "at-once"}
    answers = await asyncio.gather(
        *(
            agent.post(f"/api/v1/customers/{customer_id}/sms", json={"body": "Hi"}, headers=headers)
            for _ in range(3)
        )
    )
    assert sorted(a.status for a in answers) == [200, 200, 201]
    assert len({(await a.json())["id"] for a in answers}) == 1
    assert len(await sandbox_messages(service, TEXTER)) == 1


async def test_failed_and_undelivered_texts_keep_their_error_code(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    agent = await signed_in(service, staff.red_1)
    for outcome, code in (("undelivered", 30003), ("failed", 30008)):
        resp = await service.post(
            "/twilio-sandbox/sandbox/messages/outcomes",
            json={"to": TEXTER, "outcome": outcome, "error_code": code},
        )
        assert resp.status == 200
        sent = await (await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": outcome})).json()
        stored = await eventually(functools.partial(_final, uow_factory, sent["id"]), timeout=10)
        assert (stored.status, stored.error_code) == (outcome, code)


async def _final(uow_factory: UnitOfWorkFactory, message_id: int) -> SmsMessage | None:
    stored = await row(uow_factory, message_id)
    return stored if stored.status in ("delivered", "undelivered", "failed") else None


async def test_receipts_out_of_order_and_twice_never_move_backwards(
    settings: Any, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    # The sandbox sends each message's receipts newest first: delivered, then sent.
    svc = await start_service(
        settings,
        sms={"sweep_seconds": 3600},
        sandbox={"messages": {"delivered": 1, "undelivered": 0, "failed": 0, "out_of_order": True}},
    )
    try:
        ticket_id = await sms_ticket(svc, uow_factory, staff.red_1)
        ws = await agent_socket(svc, staff.red_1.login)
        agent = await signed_in(svc, staff.red_1)
        sent = await (await agent.post(f"/api/v1/tickets/{ticket_id}/sms", json={"body": "Hi"})).json()
        await next_of(ws, "sms.status", status="delivered")

        async def settled() -> bool:
            (message,) = await sandbox_messages(svc, TEXTER)
            return len([e for e in message["log"] if e["event"] == "webhook"]) == 2

        await eventually(settled, timeout=10)
        (message,) = await sandbox_messages(svc, TEXTER)
        receipts = [e["what"] for e in message["log"] if e["event"] == "webhook"]
        assert receipts == ["message status delivered", "message status sent"]
        assert (await row(uow_factory, sent["id"])).status == "delivered"
        # Twilio delivering receipts again (and a late one) changes nothing either.
        twilio = Twilio(svc)
        for status in ("delivered", "sent", "queued", "undelivered"):
            params = {"MessageSid": sent["message_sid"], "MessageStatus": status, "ErrorCode": "30003"}
            resp = await twilio.post(f"/twilio/sms/status?outbox={sent['id']}", params)
            assert resp.status == 200
        stored = await row(uow_factory, sent["id"])
        assert (stored.status, stored.error_code) == ("delivered", None)
        try:
            extra = await next_of(ws, "sms.status", timeout=0.3)
        except TimeoutError:
            extra = None
        assert extra is None, extra
        # A receipt for a text we never sent is ignored.
        resp = await twilio.post("/twilio/sms/status", {"MessageSid": message_sid(), "MessageStatus": "sent"})
        assert resp.status == 200
        await ws.close()
    finally:
        await svc.close()


async def test_a_receipt_before_the_gateway_answer_is_kept(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    """The receipt names the outbox row in its URL, so it lands even if the MessageSid is not stored yet."""
    ticket_id = await sms_ticket(service, uow_factory, staff.red_1)
    async with uow_factory() as uow:
        queued = await queue_sms(
            uow,
            customer_id=(await uow.session.get_one(Ticket, ticket_id)).customer_id,
            to=TEXTER,
            from_=OUR_NUMBER,
            body="x",
            ticket_id=ticket_id,
        )
        await uow.commit()
    sid = message_sid()
    resp = await Twilio(service).post(
        f"/twilio/sms/status?outbox={queued.id}", {"MessageSid": sid, "MessageStatus": "sent"}
    )
    assert resp.status == 200
    stored = await row(uow_factory, queued.id)
    assert (stored.message_sid, stored.status) == (sid, "sent")
    async with uow_factory() as uow:
        interaction = await uow.session.scalar(select(Interaction).where(Interaction.external_id == sid))
    assert interaction is not None and interaction.id == stored.interaction_id
