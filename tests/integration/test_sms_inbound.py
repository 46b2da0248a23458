"""Inbound texts over signed Twilio webhooks: the sender becomes a customer, the text is logged
once per MessageSid with its media, threads into the open SMS ticket or opens one (at once or
after the no-answer delay), reaches the assigned agent's socket; forged ones store nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from contact_center.settings import Settings
from contact_center.sms.inbound import open_unanswered
from contact_center.sms.routes import SMS_DESK
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, SmsMessage, Ticket, utcnow
from crm_core.types import Channel, Direction
from tests.conftest import Staff
from tests.support.agent_socket import agent_socket, next_of, nothing_of
from tests.support.sessions import signed_in
from tests.support.sms import (
    OUR_NUMBER,
    TEXTER,
    Twilio,
    customer_with_phone,
    message_sid,
    sms_rows,
    start_service,
)


async def count(uow_factory: UnitOfWorkFactory, model: Any) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


# --- tests ------------------------------------------------------------------------------------


async def test_a_text_from_an_unknown_number_opens_a_ticket_with_its_media(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(service)
    sid = await twilio.text(
        "Here is the broken part",
        sender="+442079460958",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        MediaContentType1="video/mp4",
    )
    (row,) = await sms_rows(uow_factory)
    assert (row.message_sid, row.direction, row.from_number, row.to_number) == (
        sid,
        Direction.INBOUND,
        "+442079460958",
        OUR_NUMBER,
    )
    assert [m["content_type"] for m in row.media] == ["image/jpeg", "video/mp4"]
    assert row.media[0]["url"].endswith("/Media/ME1")
    async with uow_factory() as uow:
        interaction = await uow.session.get_one(Interaction, row.interaction_id)
        ticket = await uow.session.get_one(Ticket, row.ticket_id)
        customer = await uow.session.get_one(Customer, row.customer_id)
    assert (interaction.channel, interaction.direction, interaction.external_id) == (
        Channel.SMS,
        Direction.INBOUND,
        sid,
    )
    assert interaction.ticket_id == ticket.id and interaction.body == "Here is the broken part"
    assert [m["url"] for m in interaction.meta["media"]] == [m["url"] for m in row.media]
    assert (ticket.source_channel, ticket.customer_id, ticket.assignee_id) == (Channel.SMS, customer.id, None)
    assert customer.display_name == "+442079460958"


async def test_a_second_delivery_changes_nothing_and_the_next_text_joins_the_ticket(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer_with_phone(uow_factory)
    twilio = Twilio(service)
    sid = await twilio.text("My router is down")
    before = (await count(uow_factory, Interaction), await count(uow_factory, Ticket))
    await twilio.text("My router is down", sid=sid)
    await asyncio.gather(*(twilio.text("My router is down", sid=sid) for _ in range(3)))
    assert (await count(uow_factory, Interaction), await count(uow_factory, Ticket)) == before == (1, 1)
    await twilio.text("Still down")
    rows = await sms_rows(uow_factory)
    assert len(rows) == 2 and rows[0].ticket_id == rows[1].ticket_id is not None
    assert await count(uow_factory, Ticket) == 1
    # A closed ticket is not joined: the next text is a new conversation.
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, rows[0].ticket_id)
        ticket.status = ticket.status.CLOSED
        await uow.commit()
    await twilio.text("Down again")
    assert (await sms_rows(uow_factory))[-1].ticket_id not in (None, rows[0].ticket_id)


async def test_the_assigned_agent_sees_the_text_live(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await customer_with_phone(uow_factory, owner_id=staff.red_2.id)
    owner = await agent_socket(service, staff.red_2.login)
    other = await agent_socket(service, staff.red_1.login)
    await Twilio(service).text("Can you call me back?")
    event = await next_of(owner, "sms.received")
    assert event["agent_id"] == staff.red_2.id and event["customer_id"] == customer_id
    assert event["body"] == "Can you call me back?" and event["from"] == TEXTER
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, event["ticket_id"])
    assert ticket.assignee_id == staff.red_2.id  # the owner's ticket
    await nothing_of(other, "sms.received")
    await owner.close()
    await other.close()


async def test_forged_or_missing_signature_is_refused_and_nothing_is_stored(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(service)
    params = {"MessageSid": message_sid(), "From": TEXTER, "To": OUR_NUMBER, "Body": "STOP"}
    assert (
        await twilio.post("/twilio/sms/inbound", params, signature="bm90IHRoZSBzaWduYXR1cmU=")
    ).status == 403
    assert (await twilio.post("/twilio/sms/inbound", params, signature="")).status == 403
    good = twilio.validator.compute_signature(twilio.base + "/twilio/sms/inbound", params)
    assert (
        await twilio.post("/twilio/sms/inbound", {**params, "Body": "START"}, signature=good)
    ).status == 403
    status = {"MessageSid": message_sid(), "MessageStatus": "delivered"}
    assert (await twilio.post("/twilio/sms/status?outbox=1", status, signature=good)).status == 403
    for model in (SmsMessage, Interaction, Customer, Ticket):
        assert await count(uow_factory, model) == 0


async def test_malformed_texts_are_refused_and_nothing_is_stored(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(service)
    for params in (
        {"From": TEXTER, "To": OUR_NUMBER, "Body": "no sid"},
        {"MessageSid": message_sid(), "To": OUR_NUMBER, "Body": "no sender"},
        {"MessageSid": message_sid(), "From": TEXTER, "Body": "x", "NumMedia": "many"},
        {"MessageSid": message_sid(), "From": TEXTER, "Body": "x", "NumMedia": "1"},
    ):
        assert (await twilio.post("/twilio/sms/inbound", params)).status == 400
    assert await count(uow_factory, SmsMessage) == 0
    assert await count(uow_factory, Customer) == 0


async def test_no_answer_rule_opens_a_ticket_when_the_service_clock_passes_the_delay(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    """The desk reads the service's clock: on a simulated one (weeks from now), the text is stored
    at that clock's time and the rule fires when that clock passes ``no_answer_minutes``, without
    waiting for real time to pass."""
    clock = FakeClock()
    service = await start_service(
        settings,
        clock=clock,
        sms={"ticket_rule": "no_answer", "no_answer_minutes": 10, "sweep_seconds": 3600},
    )
    try:
        await customer_with_phone(uow_factory, "+12025550182")
        await Twilio(service).text("Is anyone there?", sender="+12025550182")
        desk = service.app[SMS_DESK].get()
        clock.advance(9 * 60)
        await desk.sweep()
        assert [r.ticket_id for r in await sms_rows(uow_factory)] == [None]
        clock.advance(2 * 60)  # eleven minutes on the service's clock
        await desk.sweep()
        (row,) = await sms_rows(uow_factory)
        assert row.ticket_id is not None
    finally:
        await service.close()


async def test_no_answer_rule_opens_a_ticket_only_when_nobody_texts_back(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    service = await start_service(
        settings, sms={"ticket_rule": "no_answer", "no_answer_minutes": 10, "sweep_seconds": 3600}
    )
    try:
        answered_id = await customer_with_phone(uow_factory, "+12025550180", owner_id=staff.red_1.id)
        await customer_with_phone(uow_factory, "+12025550181")
        twilio = Twilio(service)
        await twilio.text("Hello?", sender="+12025550180")
        await twilio.text("Anyone there?", sender="+12025550181")
        await twilio.text("Hello again", sender="+12025550181")
        assert [r.ticket_id for r in await sms_rows(uow_factory)] == [None, None, None]
        # red-1 answers the first customer from their record (no ticket yet).
        agent = await signed_in(service, staff.red_1)
        resp = await agent.post(f"/api/v1/customers/{answered_id}/sms", json={"body": "Hi, how can I help?"})
        assert resp.status == 201, await resp.text()
        desk = service.app[SMS_DESK].get()
        async with uow_factory() as uow:  # before the delay: nothing opens
            assert await open_unanswered(uow, desk.policy) == []
        async with uow_factory() as uow:
            opened = await open_unanswered(uow, desk.policy, utcnow() + timedelta(minutes=11))
            await uow.commit()
        assert len(opened) == 1
        rows = await sms_rows(uow_factory)
        inbound = [r for r in rows if r.direction is Direction.INBOUND]
        assert [r.ticket_id for r in inbound] == [None, opened[0], opened[0]]
        async with uow_factory() as uow:  # running again changes nothing
            assert await open_unanswered(uow, desk.policy, utcnow() + timedelta(minutes=30)) == []
        await Twilio(service).text("One more", sender="+12025550181")
        assert (await sms_rows(uow_factory))[-1].ticket_id == opened[0]
    finally:
        await service.close()


async def test_texts_from_one_customer_arriving_together_open_one_ticket(
    service: TestClient[Any, Any], uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await customer_with_phone(uow_factory)
    twilio = Twilio(service)
    await asyncio.gather(*(twilio.text(f"part {n} of my question") for n in range(6)))
    async with uow_factory() as uow:
        tickets = list(await uow.session.scalars(select(Ticket).where(Ticket.customer_id == customer_id)))
        rows = list(
            await uow.session.scalars(select(SmsMessage).where(SmsMessage.customer_id == customer_id))
        )
    assert len(tickets) == 1
    assert len(rows) == 6 and {r.ticket_id for r in rows} == {tickets[0].id}
