"""Events reach subscribers after commit; with Redis, across application instances."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.bus.redis_bus import RedisBus
from contact_center.events import BUS_RESYNC
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from tests.conftest import PASSWORD, Staff, isolated_settings
from tests.support.clock import FakeClock
from tests.support.spare_redis import SpareRedis
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually, until


async def _collect(client: TestClient[Any, Any]) -> list[DomainEvent]:
    received: list[DomainEvent] = []

    async def handler(event: DomainEvent) -> None:
        received.append(event)

    client.app[RUNTIME].bus.subscribe(handler)
    return received


async def _wait_for(received: list[DomainEvent], name: str, timeout: float = 5.0) -> DomainEvent:
    def found() -> DomainEvent | None:
        return next((e for e in received if e.name == name), None)

    return await until(found, timeout, name)


async def _login(client: TestClient[Any, Any], login: str) -> dict[str, str]:
    resp = await client.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
    assert resp.status == 200
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def test_committed_change_reaches_subscriber(client: TestClient[Any, Any], staff: Staff) -> None:
    received = await _collect(client)
    headers = await _login(client, staff.red_1.login)
    resp = await client.post("/api/v1/customers", json={"display_name": "Grace Hopper"}, headers=headers)
    assert resp.status == 201
    event = await _wait_for(received, "customer.created")
    assert event.payload["customer_id"] == (await resp.json())["id"]


async def test_rejected_change_publishes_nothing(client: TestClient[Any, Any], staff: Staff) -> None:
    received = await _collect(client)
    headers = await _login(client, staff.red_1.login)
    resp = await client.post(
        "/api/v1/customers", json={"display_name": "Bad", "phones": ["12"]}, headers=headers
    )
    assert resp.status == 422
    # Events arrive in commit order: once a later change's event is in, the rejected one's would be.
    resp = await client.post("/api/v1/customers", json={"display_name": "Good"}, headers=headers)
    assert resp.status == 201
    later = (await resp.json())["id"]
    await until(lambda: any(e.payload.get("customer_id") == later for e in received), what="the later change")
    created = [e.payload["customer_id"] for e in received if e.name == "customer.created"]
    assert created == [later]


@pytest.mark.needs_redis
async def test_two_instances_see_each_others_events(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    assert settings.redis.url
    async with (
        TestClient(TestServer(create_app(settings))) as one,
        TestClient(TestServer(create_app(settings))) as two,
    ):
        seen_by_two = await _collect(two)
        seen_by_one = await _collect(one)
        headers = await _login(one, staff.red_1.login)
        resp = await one.post(
            "/api/v1/customers", json={"display_name": "Katherine Johnson"}, headers=headers
        )
        assert resp.status == 201
        customer_id = (await resp.json())["id"]
        event = await _wait_for(seen_by_two, "customer.created")
        assert event.payload["customer_id"] == customer_id
        # The publishing instance hears it the same way as every other instance.
        assert (await _wait_for(seen_by_one, "customer.created")).payload["customer_id"] == customer_id


@pytest.mark.needs_redis
async def test_login_rate_limit_is_shared_between_instances(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    limit = settings.security.login_attempts_per_minute
    clock = FakeClock()
    shared = isolated_settings(settings)
    async with (
        TestClient(TestServer(create_app(shared, rate_clock=clock))) as one,
        TestClient(TestServer(create_app(shared, rate_clock=clock))) as two,
    ):
        login = {"login": staff.blue_1.login, "password": "wrong password!"}
        for i in range(limit):
            resp = await (one if i % 2 else two).post("/api/v1/auth/login", json=login)
            assert resp.status == 401
        assert (await one.post("/api/v1/auth/login", json=login)).status == 429
        assert (await two.post("/api/v1/auth/login", json=login)).status == 429
        clock.advance(60)  # a new window on both
        assert (await two.post("/api/v1/auth/login", json=login)).status == 401


@pytest.mark.needs_redis
async def test_the_bus_listener_survives_its_connection_being_killed(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    """Redis drops the subscriber's connection (a restart, a failover, CLIENT KILL): the bus
    subscribes again by itself and events flow to this instance again."""
    assert settings.redis.url
    name = f"cc-test-{secrets.token_hex(4)}"  # this app's connections, and nobody else's
    url = f"{settings.redis.url}{'&' if '?' in settings.redis.url else '?'}client_name={name}"
    admin = Redis.from_url(settings.redis.url, decode_responses=True)
    try:
        async with TestClient(
            TestServer(create_app(isolated_settings(settings).with_overrides(redis={"url": url})))
        ) as client:
            received = await _collect(client)
            killed = await _kill_subscribers(admin, name)
            assert killed, "the bus had no subscriber connection to kill"
            bus = client.app[RUNTIME].bus

            async def heard_again() -> bool:  # pub/sub drops what is published meanwhile: ask again
                await bus.publish([DomainEvent("test.probe", {})])
                return any(e.name == "test.probe" for e in received)

            await eventually(heard_again, what="the bus hears events again")
            subscribers = await _subscriber_ids(admin, name)
            assert subscribers and not set(subscribers) & set(killed)  # a new connection
            headers = await _login(client, staff.red_1.login)
            resp = await client.post(
                "/api/v1/customers", json={"display_name": "Mary Jackson"}, headers=headers
            )
            assert resp.status == 201
            event = await _wait_for(received, "customer.created")
            assert event.payload["customer_id"] == (await resp.json())["id"]
            ready = await client.get("/readyz")
            assert ready.status == 200, await ready.text()
    finally:
        await admin.aclose()


async def _subscriber_ids(admin: Redis, name: str) -> list[str]:
    """Ids of the pub/sub connections named ``name``."""
    clients = await admin.client_list(_type="pubsub")
    return [str(c["id"]) for c in clients if c.get("name") == name]


async def _kill_subscribers(admin: Redis, name: str) -> list[str]:
    ids = await _subscriber_ids(admin, name)
    for client_id in ids:
        await admin.client_kill_filter(_id=client_id)
    return ids


@dataclass
class StartedBus:
    redis: Redis
    bus: RedisBus
    received: list[DomainEvent]


@pytest_asyncio.fixture(loop_scope="session")
async def redis_bus(settings: Settings) -> AsyncIterator[StartedBus]:
    """A Redis bus of its own (a key prefix of the test's), started, recording what it delivers."""
    assert settings.redis.url, "mark the test needs_redis"
    redis = Redis.from_url(settings.redis.url, decode_responses=True)
    bus = RedisBus(redis, f"{settings.redis.key_prefix}bus-test-{secrets.token_hex(3)}:")
    received: list[DomainEvent] = []

    async def handler(event: DomainEvent) -> None:
        received.append(event)

    bus.subscribe(handler)
    await bus.start()
    try:
        yield StartedBus(redis, bus, received)
    finally:
        await bus.close()
        await redis.aclose()


@pytest.mark.needs_redis
async def test_redis_bus_keeps_batch_order_and_skips_garbage(redis_bus: StartedBus) -> None:
    redis, bus, received = redis_bus.redis, redis_bus.bus, redis_bus.received
    await redis.publish(bus.channel, "not json")
    await bus.publish([DomainEvent(name=f"step.{i}", payload={"i": i}) for i in range(5)])
    await bus.publish([DomainEvent(name="step.5", payload={"i": 5})])
    await _wait_for(received, "step.5")
    assert [e.name for e in received] == [f"step.{i}" for i in range(6)]


@pytest.mark.needs_redis
async def test_redis_bus_sends_concurrent_publishes_together_in_order(redis_bus: StartedBus) -> None:
    redis, bus, received = redis_bus.redis, redis_bus.bus, redis_bus.received
    watcher = redis.pubsub(ignore_subscribe_messages=True)
    await watcher.subscribe(bus.channel)
    try:
        batches = [[DomainEvent(f"e.{p}.{i}", {"p": p, "i": i}) for i in range(3)] for p in range(40)]
        await asyncio.gather(*(bus.publish(batch) for batch in batches))
        await _wait_for(received, "e.39.2")
        # Every event once, each publisher's batch whole and in order, batches in call order.
        assert [e.name for e in received] == [e.name for batch in batches for e in batch]
        sizes: list[int] = []  # events per message on the channel
        async with asyncio.timeout(5):
            while sum(sizes) < len(received):
                message = await watcher.get_message(timeout=1.0)
                if message is not None:
                    sizes.append(len(json.loads(message["data"])))
        assert sum(sizes) == 120 and len(sizes) < len(batches)  # not one message per publish
    finally:
        await watcher.aclose()


async def test_a_publish_that_failed_is_followed_by_a_resync_for_every_instance() -> None:
    """The publishing instance loses Redis: its publish is raised (the caller counts it), and as
    soon as Redis takes it again every instance hears ``bus.resync`` and resends what was lost."""
    spare = SpareRedis()
    await spare.start()
    proxy = TcpProxy("127.0.0.1", spare.port)  # the publisher's way to Redis, and only its
    await proxy.start()
    listener_redis = Redis.from_url(spare.url, decode_responses=True)
    publisher_redis = Redis.from_url(f"redis://127.0.0.1:{proxy.port}/0", decode_responses=True)
    listener, publisher = RedisBus(listener_redis, "resync:"), RedisBus(publisher_redis, "resync:")
    received: list[DomainEvent] = []

    async def handler(event: DomainEvent) -> None:
        received.append(event)

    listener.subscribe(handler)
    try:
        await listener.start()
        await publisher.start()
        await proxy.stop()
        with pytest.raises((RedisError, OSError)):
            await publisher.publish([DomainEvent("chat.message", {"lost": True})])
        await proxy.start()
        resync = await _wait_for(received, BUS_RESYNC, timeout=10)
        assert resync.payload == {"reason": "publish failed"}
        assert not [e for e in received if e.name == "chat.message"]
    finally:
        for bus in (publisher, listener):
            await bus.close()
        for redis in (publisher_redis, listener_redis):
            await redis.aclose()
        await proxy.stop()
        await spare.stop()


async def test_an_instance_that_subscribes_again_resyncs_itself() -> None:
    spare = SpareRedis()
    await spare.start()
    redis = Redis.from_url(spare.url, decode_responses=True)
    bus = RedisBus(redis, "resync:")
    received: list[DomainEvent] = []

    async def handler(event: DomainEvent) -> None:
        received.append(event)

    bus.subscribe(handler)
    try:
        await bus.start()
        await asyncio.sleep(0.2)
        assert not received  # the first subscription has nothing to catch up on
        await spare.restart()
        resync = await _wait_for(received, BUS_RESYNC, timeout=10)
        assert resync.payload == {"reason": "subscribed again"}
    finally:
        await bus.close()
        await redis.aclose()
        await spare.stop()
