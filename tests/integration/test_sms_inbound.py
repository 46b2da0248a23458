"""Inbound texts over signed Twilio webhooks: the sender becomes a customer, the text is logged
once per MessageSid with its media, threads into the open SMS ticket or opens one (at once or
after the no-answer delay), reaches the assigned agent's socket; forged ones store nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse, ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from contact_center.app import create_app
from contact_center.appkeys import SETTINGS
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from contact_center.sms.inbound import open_unanswered
from contact_center.sms.routes import SMS_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, SmsMessage, Ticket, utcnow
from crm_core.services.customers import create_customer
from crm_core.types import Channel, Direction
from tests.conftest import PASSWORD, Staff, isolated_settings

OUR_NUMBER = "+15005550006"
TEXTER = "+12025550143"
CONTROL_TOKEN = "sms-tests-sandbox-control-token"
_SIDS = itertools.count(1)


def message_sid() -> str:
    return f"SM{next(_SIDS):032x}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_service(settings: Settings, **sections: dict[str, Any]) -> TestClient[Any, Any]:
    """The service on a real port with the Twilio sandbox mounted (fast simulated time): texts go
    out through the sandbox's REST API and its signed receipts come back over HTTP."""
    port = _free_port()
    sandbox = {"time_scale": 0.01, "seed": 7, "control_token": CONTROL_TOKEN, **sections.pop("sandbox", {})}
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"}, sandbox=sandbox, **sections
    )
    # Tests drive the sandbox's phones (texters, delivery outcomes) with its control token, set
    # in the settings so that the sandbox CLI finds it there too.
    headers = {CONTROL_TOKEN_HEADER: CONTROL_TOKEN}
    client = TestClient(TestServer(create_app(site), host="127.0.0.1", port=port), headers=headers)
    await client.start_server()
    return client


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_service(settings, sms={"sweep_seconds": 3600})
    try:
        yield client
    finally:
        await client.close()


class Twilio:
    """Posts messaging webhooks to the service signed exactly as Twilio signs them."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        settings = client.app[SETTINGS]
        self.client = client
        self.base = settings.server.public_base_url
        self.validator = RequestValidator(settings.twilio.auth_token.get_secret_value())

    async def post(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> ClientResponse:
        sig = self.validator.compute_signature(self.base + path, params) if signature is None else signature
        return await self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})

    async def text(self, body: str, *, sid: str | None = None, sender: str = TEXTER, **extra: str) -> str:
        sid = sid or message_sid()
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "ACsandbox0000000000000000000000000",
            "From": sender,
            "To": OUR_NUMBER,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
            **extra,
        }
        resp = await self.post("/twilio/sms/inbound", params)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/xml"
        return sid


async def agent_socket(client: TestClient[Any, Any], login: str) -> ClientWebSocketResponse:
    resp = await client.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
    assert resp.status == 200
    cookie = resp.cookies["cc_session"].value
    client.session.cookie_jar.clear()
    ws = await client.ws_connect("/ws/agent", headers={"Cookie": f"cc_session={cookie}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    return ws


async def next_of(ws: ClientWebSocketResponse, kind: str, timeout: float = 5, **match: Any) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads((await ws.receive()).data)
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message


async def nothing_of(ws: ClientWebSocketResponse, kind: str, wait: float = 0.3) -> None:
    try:
        message = await next_of(ws, kind, timeout=wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected {kind}: {message}")


async def customer_with_phone(
    uow_factory: UnitOfWorkFactory, phone: str = TEXTER, owner_id: int | None = None
) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow, None, region="US", display_name="Ada Lovelace", phones=[phone], owner_id=owner_id
        )
        await uow.commit()
    return customer.id


async def sms_rows(uow_factory: UnitOfWorkFactory) -> list[SmsMessage]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(SmsMessage).order_by(SmsMessage.id)))


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
        sess = await service.post(
            "/api/v1/auth/login", json={"login": staff.red_1.login, "password": PASSWORD}
        )
        csrf = (await sess.json())["csrf_token"]
        resp = await service.post(
            f"/api/v1/customers/{answered_id}/sms",
            json={"body": "Hi, how can I help?"},
            headers={"X-CSRF-Token": csrf},
        )
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
