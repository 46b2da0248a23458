"""SIGTERM gives back at once the texts an instance claimed but had not handed to Twilio yet
(here: waiting for their sending number's turn), instead of leaving them claimed until the
stale-claim timeout: started again, the service sends them at once, each exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import OutboxEntry, SmsMessage
from crm_core.types import Direction
from tests.conftest import isolated_settings
from tests.support.service_process import ServiceProcess, service_environment, write_settings
from tests.support.twilio_webhooks import inbound_text, message_sid
from tests.support.waiting import eventually, free_port

CONTROL_TOKEN = "shutdown-claims-control-token"
SENDERS = [f"+1202555{n:04d}" for n in range(300, 305)]
SECTIONS: dict[str, dict[str, Any]] = {
    # One text every 5 s from our number: the help replies wait, claimed, for their turn.
    "sms": {"max_per_second_per_sender": 0.2, "sweep_seconds": 1},
    "sandbox": {"control_token": CONTROL_TOKEN, "time_scale": 0.01},
    "server": {"drain_seconds": 0},
}
# Started again without the throttle, so what was given back goes at once (a throttled restart
# would only wait out the turns; the stale-claim timeout it must beat is 300 s).
UNTHROTTLED = {**SECTIONS, "sms": {"sweep_seconds": 1}}


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    settings: Settings, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    port = free_port()
    config = write_settings(tmp_path / "settings.toml", SECTIONS)
    env = service_environment(settings, port, isolated_settings(settings).redis.key_prefix)
    process = ServiceProcess(config, env, port, tmp_path / "service.log")
    try:
        yield process
    finally:
        process.kill()


async def replies(uow_factory: UnitOfWorkFactory) -> list[SmsMessage]:
    async with uow_factory() as uow:
        return list(
            await uow.session.scalars(
                select(SmsMessage)
                .where(SmsMessage.direction == Direction.OUTBOUND, SmsMessage.to_number.in_(SENDERS))
                .order_by(SmsMessage.id)
            )
        )


async def claims(uow_factory: UnitOfWorkFactory) -> dict[int | None, datetime | None]:
    """When each text's outbox row was claimed (None: it is not), by text."""
    async with uow_factory() as uow:
        rows = await uow.session.execute(select(OutboxEntry.sms_message_id, OutboxEntry.claimed_at))
        return dict(rows.tuples().all())


async def sandbox_texts(service: ServiceProcess) -> Counter[str]:
    """How many texts the service's sandbox (new at each start) was handed, by recipient."""
    headers = {CONTROL_TOKEN_HEADER: CONTROL_TOKEN}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{service.base_url}/twilio-sandbox/sandbox/messages", headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        messages = (await resp.json())["messages"]
    return Counter(m["to"] for m in messages if m["direction"] == "outbound-api")


async def test_sigterm_gives_back_texts_claimed_but_not_handed_over(
    service: ServiceProcess, settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    await service.start()
    validator = RequestValidator(settings.twilio.auth_token.get_secret_value())
    url = f"{service.base_url}/twilio/sms/inbound"
    with service.explained():
        async with aiohttp.ClientSession() as http:
            for sender in SENDERS:
                params = inbound_text(message_sid(), sender, "HELP")
                headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
                async with http.post(url, data=params, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()

        async def waiting_for_their_turn() -> bool:
            rows, claimed_at = await replies(uow_factory), await claims(uow_factory)
            handed = [r for r in rows if r.message_sid is not None]
            claimed = [r for r in rows if r.message_sid is None and claimed_at[r.id] is not None]
            return len(rows) == len(SENDERS) and len(handed) >= 1 and len(claimed) >= 2

        await eventually(waiting_for_their_turn, 20, "one reply is sent, the others wait claimed")
        first_run = await sandbox_texts(service)
        await service.stop()

    rows, claimed_at = await replies(uow_factory), await claims(uow_factory)
    held = [r for r in rows if r.message_sid is None]
    assert held, "every reply left before the stop"
    assert all(claimed_at[r.id] is None and r.status == "queued" for r in held), [
        (r.id, r.status, claimed_at[r.id]) for r in held
    ]

    write_settings(service.config_file, UNTHROTTLED)
    await service.start()
    with service.explained():

        async def all_handed_over() -> bool:
            return all(r.message_sid is not None for r in await replies(uow_factory))

        await eventually(all_handed_over, 30, "the held replies are sent after the restart")
        second_run = await sandbox_texts(service)
    assert first_run + second_run == Counter(SENDERS), (first_run, second_run)
    assert set(second_run) == {r.to_number for r in held}
