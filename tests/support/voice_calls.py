"""What the voice tests share: Twilio's voice webhooks signed as Twilio signs them (the ``twilio``
fixture, registered for every test module, posts them to the ``client`` app), the caller and the
rows a call leaves, and the service with its Twilio REST calls recorded."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree

import pytest_asyncio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction, utcnow
from crm_core.services.customers import create_customer
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from tests.conftest import isolated_settings

VOICE = "/twilio/voice"
CALLER = "+12025550143"
_SIDS = itertools.count(1)


def call_sid() -> str:
    return f"CA{next(_SIDS):032x}"


class Twilio:
    """Posts webhooks to the app signed exactly as Twilio signs them."""

    def __init__(self, client: TestClient[Any, Any], settings: Settings) -> None:
        self.client = client
        self.base = settings.server.public_base_url
        self.validator = RequestValidator(settings.twilio.auth_token.get_secret_value())

    async def post(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> ClientResponse:
        url = self.base + path
        sig = self.validator.compute_signature(url, params) if signature is None else signature
        return await self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})

    async def twiml(self, path: str, params: dict[str, str]) -> ElementTree.Element:
        resp = await self.post(path, params)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/xml"
        return ElementTree.fromstring(await resp.text())

    async def incoming(self, sid: str, caller: str = CALLER) -> ElementTree.Element:
        return await self.twiml(
            f"{VOICE}/inbound",
            {
                "CallSid": sid,
                "From": caller,
                "To": "+15005550006",
                "CallStatus": "ringing",
                "Direction": "inbound",
            },
        )

    async def status(self, sid: str, status: str, sequence: int, **extra: str) -> None:
        params = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence), **extra}
        resp = await self.post(f"{VOICE}/status", params)
        assert resp.status == 200, await resp.text()

    async def agent_answers(self, sid: str, agent_id: int) -> None:
        params = {"CallSid": "CA" + "f" * 32, "ParentCallSid": sid, "CallStatus": "in-progress"}
        resp = await self.post(f"{VOICE}/agent-leg?agent={agent_id}", params)
        assert resp.status == 200


@pytest_asyncio.fixture(loop_scope="session")
async def twilio(client: TestClient[Any, Any], settings: Settings) -> Twilio:
    return Twilio(client, settings)


async def known_customer(uow_factory: UnitOfWorkFactory, owner_id: int | None = None) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow, None, region="US", display_name="Ada Lovelace", phones=[CALLER], owner_id=owner_id
        )
        await log_interaction(
            uow,
            channel=Channel.EMAIL,
            direction=Direction.INBOUND,
            customer_id=customer.id,
            external_id="<m1@example.com>",
            subject="Invoice question",
        )
        await uow.commit()
    return customer.id


async def voice_rows(uow_factory: UnitOfWorkFactory) -> list[Interaction]:
    async with uow_factory() as uow:
        return list(
            await uow.session.scalars(select(Interaction).where(Interaction.channel == Channel.VOICE))
        )


def dialed_identity(twiml: ElementTree.Element) -> str | None:
    client = twiml.find("./Dial/Client")
    return None if client is None else (client.text or "").strip()


class FakeTwilioRest:
    """Records the REST calls the gateway makes (the queue's redirects), answers fetches of the
    calls in ``calls`` (others: 20404) and refuses the redirects of the calls in ``refusals``."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, dict[str, str]]] = []
        self.updated_at: list[datetime] = []
        self.fetched: list[str] = []
        self.calls: dict[str, dict[str, Any]] = {}  # CallSid -> the call's resource fields
        self.refusals: dict[str, tuple[int, int]] = {}  # CallSid -> (HTTP status, Twilio code)
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.update_call)
        self.app.router.add_get("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.fetch_call)

    def call_ended(self, sid: str, status: str, duration: int, end_time: datetime | None = None) -> None:
        """Twilio holds ``sid`` as ended ``status`` after ``duration`` seconds."""
        ended = end_time or utcnow()
        self.calls[sid] = {"status": status, "duration": str(duration), "end_time": format_datetime(ended)}

    @staticmethod
    def _error(status: int, code: int) -> web.Response:
        body = {"code": code, "message": f"error {code}", "more_info": "", "status": status}
        return web.json_response(body, status=status)

    async def update_call(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        sid = request.match_info["sid"]
        self.updates.append((sid, form))
        self.updated_at.append(utcnow())
        if sid in self.refusals:
            return self._error(*self.refusals[sid])
        return web.json_response(
            {"sid": sid, "status": "in-progress", "account_sid": request.match_info["account"]}
        )

    async def fetch_call(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        self.fetched.append(sid)
        if sid not in self.calls:
            return self._error(404, 20404)
        return web.json_response(
            {"sid": sid, "account_sid": request.match_info["account"], **self.calls[sid]}
        )


@contextlib.asynccontextmanager
async def with_rest_double(
    settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[TestClient[Any, Any], Twilio, FakeTwilioRest]]:
    """The service (settings ``overrides`` applied) with its Twilio REST calls recorded."""
    rest = FakeTwilioRest()
    async with TestServer(rest.app) as rest_server:
        configured = isolated_settings(settings).with_overrides(
            twilio={"api_base_url": str(rest_server.make_url("")).rstrip("/")}, **overrides
        )
        async with TestClient(TestServer(create_app(configured))) as client:
            yield client, Twilio(client, settings), rest
