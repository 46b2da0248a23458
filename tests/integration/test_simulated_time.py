"""Time passed in: a simulated clock, not the wall clock, drives session expiry, address blocks,
the email intake's reopen window and rate-limit windows (nothing here sleeps through them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from contact_center.app import create_app
from contact_center.rate_limit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from contact_center.settings import Settings
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import NotFound
from crm_core.models import AgentSession, EmailMessage, Ticket
from crm_core.rules.email_refs import message_key
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.chat import PreChat, start_conversation, touch_visitor
from crm_core.services.chat_blocks import address_blocked, address_blocks, block_address, lift_address_block
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_intake import EmailIntake
from crm_core.services.tickets import SlaPolicy
from tests.conftest import Staff, isolated_settings
from tests.email_servers import make_mail
from tests.support.sessions import PASSWORD, signed_in

SUPPORT = MailboxPolicy(name="support", address="support@example.com")
POLICY = EmailPolicy(
    secret=b"simulated-time-secret",
    domain="example.com",
    our_addresses=frozenset({"support@example.com"}),
    sla=SlaPolicy(),
    reopen_window=timedelta(hours=24),
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, clock: FakeClock) -> AsyncIterator[TestClient[Any, Any]]:
    """The service on the simulated clock (rate-limit windows included: no clock of their own)."""
    site = isolated_settings(settings).with_overrides(
        security={"session_ttl_hours": 2, "login_attempts_per_minute": 2}
    )
    async with TestClient(TestServer(create_app(site, clock=clock))) as client:
        yield client


async def test_a_session_expires_when_the_service_clock_passes_its_lifetime(
    service: TestClient[Any, Any], staff: Staff, clock: FakeClock, uow_factory: UnitOfWorkFactory
) -> None:
    session = await signed_in(service, staff.red_1)
    async with uow_factory() as uow:
        expires_at = await uow.session.scalar(
            select(AgentSession.expires_at).where(AgentSession.agent_id == staff.red_1.id)
        )
    assert expires_at == clock.now() + timedelta(hours=2)  # stamped on the service's clock
    clock.advance(2 * 3600 - 1)
    assert (await session.get("/api/v1/auth/me")).status == 200
    clock.advance(2)
    assert (await session.get("/api/v1/auth/me")).status == 401


async def test_failed_sign_ins_are_counted_in_windows_of_the_service_clock(
    service: TestClient[Any, Any], staff: Staff, clock: FakeClock
) -> None:
    clock.advance(60 - clock.timestamp() % 60)  # the start of a minute
    wrong = {"login": staff.red_1.login, "password": "not the password"}
    assert [(await service.post("/api/v1/auth/login", json=wrong)).status for _ in range(3)] == [
        401,
        401,
        429,
    ]
    clock.advance(59)
    assert (await service.post("/api/v1/auth/login", json=wrong)).status == 429
    clock.advance(1)  # the next minute of the service's clock
    right = {"login": staff.red_1.login, "password": PASSWORD}
    assert (await service.post("/api/v1/auth/login", json=right)).status == 200


async def test_rate_limit_windows_follow_the_clock_in_memory_and_in_redis(
    settings: Settings, clock: FakeClock
) -> None:
    limiters: list[RateLimiter] = [MemoryRateLimiter(clock=clock.timestamp)]
    if settings.redis.url:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis.url, decode_responses=True)
        prefix = isolated_settings(settings).redis.key_prefix
        limiters.append(RedisRateLimiter(redis, prefix, clock=clock.timestamp))
    clock.advance(60 - clock.timestamp() % 60)
    try:
        for limiter in limiters:
            assert [await limiter.hit("k", 2, 60) for _ in range(3)] == [True, True, False]
            assert await limiter.attempts("k", 60) == 3
            clock.advance(59.9)
            assert not await limiter.hit("k", 2, 60)
            clock.advance(0.1)
            assert await limiter.attempts("k", 60) == 0
            assert await limiter.hit("k", 2, 60)
            clock.advance(60 - clock.timestamp() % 60)
    finally:
        if settings.redis.url:
            await redis.aclose()


async def test_an_address_block_ends_when_the_clock_passes_it(
    uow_factory: UnitOfWorkFactory, staff: Staff, clock: FakeClock
) -> None:
    ip = "198.51.100.23"
    async with uow_factory() as uow:
        visitor = await touch_visitor(uow, "visitor-simulated", ip, clock.now())
        chat, _ = await start_conversation(
            uow, visitor, PreChat(name="Li 李", email="li@example.com"), region="US", origin=None, ip=ip
        )
        block = await block_address(uow, chat, ip, staff.red_lead.id, "spam", 1.5, now=clock.now())
        await uow.commit()
    assert block is not None and block.until == clock.now() + timedelta(hours=1.5)

    clock.advance(1.5 * 3600 - 1)
    async with uow_factory() as uow:
        assert await address_blocked(uow.session, ip, now=clock.now())
        assert [b.block.ip for b in await address_blocks(uow.session, now=clock.now(), limit=10)] == [ip]
    clock.advance(1)
    async with uow_factory() as uow:
        assert not await address_blocked(uow.session, ip, now=clock.now())
        assert await address_blocks(uow.session, now=clock.now(), limit=10) == []
        with pytest.raises(NotFound):
            await lift_address_block(uow, ip, staff.red_lead.id, now=clock.now())
        # A new block replaces the expired one and runs from the clock's time.
        again = await block_address(uow, chat, ip, staff.red_lead.id, "again", 1, now=clock.now())
        await uow.commit()
    assert again is not None and again.until == clock.now() + timedelta(hours=1)


async def test_the_intake_reopens_a_resolved_ticket_only_within_the_window_of_its_clock(
    uow_factory: UnitOfWorkFactory, clock: FakeClock, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "mail")
    intake = EmailIntake(uow_factory, SUPPORT, POLICY, clock=clock)
    uids = iter(range(1, 100))

    async def deliver(message_id: str, **headers: str) -> Ticket:
        mail = parse_message(make_mail(message_id=message_id, **headers), store, max_attachment_bytes=100_000)
        uid = next(uids)
        assert (await intake.store_batch(1, uid, [(uid, mail)], [])).stored == 1
        async with uow_factory() as uow:
            ticket_id = await uow.session.scalar(
                select(EmailMessage.ticket_id).where(
                    EmailMessage.message_key == message_key(f"<{message_id}>")
                )
            )
            return await uow.session.get_one(Ticket, ticket_id)

    async def resolve(ticket: Ticket) -> None:
        async with uow_factory() as uow:
            row = await uow.session.get_one(Ticket, ticket.id)
            row.status, row.resolved_at = TicketStatus.RESOLVED, clock.now()
            await uow.commit()

    first = await deliver(message_id="sim-1@x", subject="My order 订单")
    assert first.created_at == clock.now()  # opened at the intake's time
    await resolve(first)
    clock.advance(24 * 3600)  # the last moment of the window
    reopened = await deliver(message_id="sim-2@x", in_reply_to="sim-1@x")
    assert (reopened.id, reopened.status, reopened.updated_at) == (first.id, TicketStatus.OPEN, clock.now())

    await resolve(first)
    clock.advance(24 * 3600 + 1)  # just past it: a new ticket, linked to the old one
    linked = await deliver(message_id="sim-3@x", in_reply_to="sim-1@x")
    assert (linked.linked_ticket_id, linked.created_at) == (first.id, clock.now())
    async with uow_factory() as uow:
        assert (await uow.session.get_one(Ticket, first.id)).status is TicketStatus.RESOLVED
