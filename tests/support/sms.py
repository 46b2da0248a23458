"""What the texting tests share: the service with the Twilio sandbox mounted (the ``service``
fixture, registered for every test module; a module with a ``service`` of its own uses that one),
messaging webhooks signed as Twilio signs them, and the texts and tickets they leave."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from contact_center.app import create_app
from contact_center.appkeys import SETTINGS
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, SmsMessage
from crm_core.models.outbox import OutboxEntry, OutboxStatus
from crm_core.ports import Clock
from crm_core.services.customers import create_customer
from tests.conftest import isolated_settings
from tests.support.waiting import free_port

OUR_NUMBER = "+15005550006"
TEXTER = "+12025550143"
CONTROL_TOKEN = "sms-tests-sandbox-control-token"
_SIDS = itertools.count(1)


def message_sid() -> str:
    return f"SM{next(_SIDS):032x}"


async def start_service(
    settings: Settings, *, clock: Clock | None = None, **sections: dict[str, Any]
) -> TestClient[Any, Any]:
    """The service on a real port with the Twilio sandbox mounted (fast simulated time): texts go
    out through the sandbox's REST API and its signed receipts come back over HTTP. The service
    runs on ``clock`` when given (the real time otherwise)."""
    port = free_port()
    sandbox = {"time_scale": 0.01, "seed": 7, "control_token": CONTROL_TOKEN, **sections.pop("sandbox", {})}
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"}, sandbox=sandbox, **sections
    )
    # Tests drive the sandbox's phones (texters, delivery outcomes) with its control token, set
    # in the settings so that the sandbox CLI finds it there too.
    headers = {CONTROL_TOKEN_HEADER: CONTROL_TOKEN}
    client = TestClient(
        TestServer(create_app(site, clock=clock), host="127.0.0.1", port=port), headers=headers
    )
    await client.start_server()
    return client


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_service(settings, sms={"sweep_seconds": 3600})
    try:
        yield client
    finally:
        await _senders_settled(uow_factory)
        await client.close()


async def _senders_settled(uow_factory: UnitOfWorkFactory, seconds: float = 5.0) -> None:
    """Let a text a sender has claimed be handed over before the service stops, so stopping does not
    cut a sender off in the middle of its write (the table is emptied right after)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        async with uow_factory() as uow:
            claimed = await uow.session.scalar(
                select(func.count())
                .select_from(OutboxEntry)
                .where(OutboxEntry.status == OutboxStatus.CLAIMED)
            )
        if not claimed:
            return
        await asyncio.sleep(0.05)


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
            "AccountSid": "AC5a4db0c0000000000000000000000000",
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


async def sms_ticket(
    service: TestClient[Any, Any], uow_factory: UnitOfWorkFactory, owner: Agent | None
) -> int:
    """A customer (owned by ``owner``) texts in; returns the ticket that opened."""
    await customer_with_phone(uow_factory, owner_id=owner.id if owner else None)
    await Twilio(service).text("Where is my order?")
    return int((await sms_rows(uow_factory))[-1].ticket_id or 0)


async def sandbox_messages(service: TestClient[Any, Any], to: str) -> list[dict[str, Any]]:
    resp = await service.get("/twilio-sandbox/sandbox/messages")
    return [m for m in (await resp.json())["messages"] if m["to"] == to and m["direction"] == "outbound-api"]
