"""``/readyz`` says "not ready" (503) while the database cannot be reached, "degraded" (200, the
failing component named) while only Redis cannot, and "ready" again once it can; ``/healthz`` stays
up meanwhile. Mailboxes and the Twilio account are reported; a stopping instance says "draining".

The service reaches the server through a TCP proxy that the test stops and starts again, as a
network outage would look to it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from contact_center.app import create_app
from contact_center.health import DRAINING
from contact_center.observability.metrics import MAILBOXES
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from tests.conftest import isolated_settings
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually

Client = TestClient[Any, Any]


@pytest_asyncio.fixture(loop_scope="session")
async def proxy() -> AsyncIterator[list[TcpProxy]]:
    started: list[TcpProxy] = []
    yield started
    for each in started:
        await each.stop()


async def proxied(host: str | None, port: int | None, default_port: int, started: list[TcpProxy]) -> TcpProxy:
    proxy = TcpProxy(host or "127.0.0.1", port or default_port)
    await proxy.start()
    started.append(proxy)
    return proxy


async def readiness(client: Client) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/readyz")
    return resp.status, await resp.json()


async def ready_again(client: Client) -> None:
    async def ready() -> bool:
        return (await readiness(client))[0] == 200

    await eventually(ready, timeout=30, what="/readyz answers ready again")


@pytest.mark.needs_postgres
async def test_not_ready_while_the_database_cannot_be_reached(
    settings: Settings, uow_factory: UnitOfWorkFactory, proxy: list[TcpProxy]
) -> None:
    database = make_url(settings.database.url)
    db_proxy = await proxied(database.host, database.port, 5432, proxy)
    url = database.set(host="127.0.0.1", port=db_proxy.port).render_as_string(hide_password=False)
    app = create_app(isolated_settings(settings).with_overrides(database={"url": url}))
    async with TestClient(TestServer(app)) as client:
        status, body = await readiness(client)
        assert (status, body["status"], body["checks"]["database"]) == (200, "ready", "ok"), body

        await db_proxy.stop()
        status, body = await readiness(client)
        assert (status, body["status"]) == (503, "not ready"), body
        assert body["checks"]["database"].startswith("error: "), body
        others = {name: state for name, state in body["checks"].items() if name != "database"}
        assert set(others.values()) == {"ok"}, body  # only the database is named
        assert (await client.get("/healthz")).status == 200  # the process itself is fine

        await db_proxy.start()
        await ready_again(client)


@pytest.mark.needs_redis
async def test_degraded_while_redis_cannot_be_reached(
    settings: Settings, uow_factory: UnitOfWorkFactory, proxy: list[TcpProxy]
) -> None:
    redis = urlsplit(settings.redis.url)
    redis_proxy = await proxied(redis.hostname, redis.port, 6379, proxy)
    netloc = redis.netloc.rpartition("@")[0]
    netloc = f"{netloc}@" if netloc else ""
    url = urlunsplit(redis._replace(netloc=f"{netloc}127.0.0.1:{redis_proxy.port}"))
    app = create_app(isolated_settings(settings).with_overrides(redis={"url": url}))
    async with TestClient(TestServer(app)) as client:
        status, body = await readiness(client)
        assert (status, body["checks"]["redis"]) == (200, "ok"), body

        await redis_proxy.stop()
        status, body = await readiness(client)
        # Calls are still taken (the database records them): a balancer keeps the instance.
        assert (status, body["status"]) == (200, "degraded"), body
        assert body["checks"]["redis"].startswith("error: "), body
        assert "redis" in body["failing"], body
        assert body["checks"]["database"] == "ok", body
        assert (await client.get("/healthz")).status == 200

        await redis_proxy.start()
        await ready_again(client)


class _Mailbox:
    name = "support"
    state = "reconnecting"
    failures = 2
    ingested = 0
    last_error: str | None = "ImapError: imap.example.com:993: login refused"
    last_poll_at: float | None = 1_700_000_000.0


async def test_mailboxes_and_the_twilio_account_are_reported(client: Client) -> None:
    status, body = await readiness(client)
    assert (status, body["status"]) == (200, "ready"), body
    assert body["twilio"]["account"] == "sandbox", body
    assert body["mailboxes"] == {}, body

    client.app[MAILBOXES].append(_Mailbox())
    status, body = await readiness(client)
    assert (status, body["status"], body["failing"]) == (200, "degraded", ["mailbox:support"]), body
    support = body["mailboxes"]["support"]
    assert support["connected"] is False, support
    assert support["last_error"] == _Mailbox.last_error
    assert support["last_poll_at"].startswith("2023-11-14T22:13:20"), support


async def test_details_only_for_the_networks_metrics_admits(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    app = create_app(isolated_settings(settings).with_overrides(metrics={"allow_networks": ["10.0.0.0/8"]}))
    async with TestClient(TestServer(app)) as client:
        app[MAILBOXES].append(_Mailbox())
        status, body = await readiness(client)
        assert (status, body["status"]) == (200, "degraded"), body
        assert "mailboxes" not in body and "twilio" not in body, body
        assert "login refused" not in json.dumps(body)


async def test_a_draining_instance_is_not_ready(client: Client) -> None:
    client.app[DRAINING].set()
    status, body = await readiness(client)
    assert (status, body["status"]) == (503, "draining"), body
    assert (await client.get("/healthz")).status == 200
