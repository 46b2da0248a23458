"""A burst of inbound-text webhooks, `contact-center serve` killed (SIGKILL) while they are in
flight, started again, and every webhook that got no 2xx delivered again (as Twilio retries),
with a few that did: every MessageSid is stored once, none lost, none doubled."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction, SmsMessage, Ticket
from crm_core.types import Channel, Direction
from tests.conftest import isolated_settings
from tests.support.service_process import ServiceProcess, service_environment, write_settings
from tests.support.waiting import free_port

OUR_NUMBER = "+15005550006"
SENDERS = [f"+1202555{n:04d}" for n in range(100, 140)]
TEXTS = 160  # four from each sender
KILL_AFTER = 40  # answered webhooks before the kill
CONCURRENCY = 32


def sid_of(n: int) -> str:
    return f"SM{n:032x}"


@dataclass
class Webhook:
    sid: str
    sender: str
    status: int | None = None  # the HTTP status, None when no answer came
    error: str = ""

    def params(self) -> dict[str, str]:
        return {
            "MessageSid": self.sid,
            "SmsMessageSid": self.sid,
            "SmsSid": self.sid,
            "AccountSid": "AC5a4db0c0000000000000000000000000",
            "From": self.sender,
            "To": OUR_NUMBER,
            "Body": f"Where is my order? ({self.sid[-4:]})",
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }

    @property
    def answered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Twilio:
    """Posts the inbound-text webhook signed as Twilio signs it, one delivery per call."""

    def __init__(self, base_url: str, auth_token: str) -> None:
        self.url = f"{base_url}/twilio/sms/inbound"
        self.validator = RequestValidator(auth_token)

    async def deliver(self, http: aiohttp.ClientSession, hook: Webhook) -> None:
        params = hook.params()
        headers = {"X-Twilio-Signature": self.validator.compute_signature(self.url, params)}
        hook.status, hook.error = None, ""
        try:
            async with http.post(self.url, data=params, headers=headers) as resp:
                await resp.read()
                hook.status = resp.status
        except (aiohttp.ClientError, OSError) as exc:
            hook.error = type(exc).__name__


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    settings: Settings, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    port = free_port()
    config = write_settings(tmp_path / "settings.toml", {"sms": {"sweep_seconds": 3600}})
    env = service_environment(settings, port, isolated_settings(settings).redis.key_prefix)
    process = ServiceProcess(config, env, port, tmp_path / "service.log")
    try:
        yield process
    finally:
        process.kill()


async def test_killed_during_a_webhook_burst_then_retried_stores_every_text_once(
    service: ServiceProcess, settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(service.base_url, settings.twilio.auth_token.get_secret_value())
    hooks = [Webhook(sid_of(n), SENDERS[n % len(SENDERS)]) for n in range(TEXTS)]
    await service.start()

    async def deliver_and_maybe_kill(http: aiohttp.ClientSession, hook: Webhook) -> None:
        await twilio.deliver(http, hook)
        if sum(h.answered for h in hooks) >= KILL_AFTER:
            service.kill()  # the other requests on the wire get no answer

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(deliver_and_maybe_kill(http, hook) for hook in hooks))
    assert not service.running
    answered = [h for h in hooks if h.answered]
    unanswered = [h for h in hooks if not h.answered]
    assert len(answered) >= KILL_AFTER, Counter((h.status, h.error) for h in hooks)
    cut_off = [h for h in unanswered if h.error != "ClientConnectorError"]
    assert cut_off, "no webhook was in flight at the kill"

    # A 2xx means stored: the service answers after its commit.
    stored = set(await sids(uow_factory))
    assert {h.sid for h in answered} <= stored

    await service.start()
    retries = unanswered + random.Random(7).sample(answered, 10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        await asyncio.gather(*(twilio.deliver(http, hook) for hook in retries))
    assert all(h.answered for h in retries), Counter((h.status, h.error) for h in retries)
    await service.stop()

    everyone = Counter(h.sid for h in hooks)
    assert Counter(await sids(uow_factory)) == everyone
    async with uow_factory() as uow:
        s = uow.session
        logged = Counter(
            await s.scalars(
                select(Interaction.external_id).where(
                    Interaction.channel == Channel.SMS, Interaction.direction == Direction.INBOUND
                )
            )
        )
        customers = await s.scalar(select(func.count()).select_from(Customer))
        tickets = await s.scalar(select(func.count()).select_from(Ticket))
    assert logged == everyone
    assert customers == len(SENDERS)
    assert tickets == len(SENDERS)


async def sids(uow_factory: UnitOfWorkFactory) -> list[str | None]:
    async with uow_factory() as uow:
        return list(
            await uow.session.scalars(
                select(SmsMessage.message_sid).where(SmsMessage.direction == Direction.INBOUND)
            )
        )
