"""``/readyz`` says "not ready" (503), naming the dependency, while the database or Redis cannot be
reached, and "ready" again once it can; ``/healthz`` stays up meanwhile.

The service reaches the server through a TCP proxy that the test stops and starts again, as a
network outage would look to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from contact_center.app import create_app
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
async def test_not_ready_while_redis_cannot_be_reached(
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
        assert (status, body["status"]) == (503, "not ready"), body
        assert body["checks"]["redis"].startswith("error: "), body
        assert body["checks"]["database"] == "ok", body
        assert (await client.get("/healthz")).status == 200

        await redis_proxy.start()
        await ready_again(client)
