"""SIGTERM stops ``contact-center serve`` gracefully: agents' sockets are closed with 1001 (going
away, so consoles reconnect to another instance) at once instead of holding the shutdown for
``server.shutdown_timeout``, and the process exits 0; while it drains, /readyz says so and new
agent and visitor sockets are refused with 503 (try again later) before the upgrade, so consoles
and widgets reconnect to another instance."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from tests.conftest import Staff, isolated_settings
from tests.support.service_process import ServiceProcess, service_environment, write_settings
from tests.support.sessions import PASSWORD
from tests.support.waiting import free_port, until

# Far longer than the test waits: a socket holding the shutdown would make it fail.
SHUTDOWN_TIMEOUT = 120.0
ORIGIN = "https://shop.example.com"


async def _service(settings: Settings, tmp_path: Path, drain_seconds: float) -> ServiceProcess:
    port = free_port()
    server = {"shutdown_timeout": SHUTDOWN_TIMEOUT, "drain_seconds": drain_seconds}
    webchat = {"allowed_origins": [ORIGIN]}
    config = write_settings(tmp_path / "settings.toml", {"server": server, "webchat": webchat})
    env = service_environment(settings, port, isolated_settings(settings).redis.key_prefix)
    return ServiceProcess(config, env, port, tmp_path / "service.log")


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff, tmp_path: Path
) -> AsyncIterator[ServiceProcess]:
    process = await _service(settings, tmp_path, drain_seconds=3.0)
    try:
        yield process
    finally:
        process.kill()


async def test_sigterm_closes_agent_sockets_with_going_away_and_exits_cleanly(
    service: ServiceProcess, staff: Staff
) -> None:
    await service.start()
    with service.explained():
        async with aiohttp.ClientSession() as http:
            login = {"login": staff.red_1.login, "password": PASSWORD}
            async with http.post(f"{service.base_url}/api/v1/auth/login", json=login) as resp:
                assert resp.status == 200, await resp.text()
                cookie = resp.cookies["cc_session"].value
            ws = await http.ws_connect(
                f"{service.base_url}/ws/agent", headers={"Cookie": f"cc_session={cookie}"}
            )
            assert (await ws.receive_json(timeout=10))["type"] == "hello"

            process = service.process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            closing = await ws.receive(timeout=30)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY, (closing, ws.close_code)

            # Draining: still answering, but no longer ready.
            async with http.get(f"{service.base_url}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["status"] == "draining"
            async with http.get(f"{service.base_url}/healthz") as resp:
                assert resp.status == 200
            # No new sockets: they would be closed again moments later.
            for path, headers in (
                ("/ws/agent", {"Cookie": f"cc_session={cookie}"}),
                ("/ws/chat", {"Origin": ORIGIN}),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(f"{service.base_url}{path}", headers=headers)
                assert refused.value.status == 503, (path, refused.value)
                assert refused.value.headers is not None and refused.value.headers.get("Retry-After")
            await ws.close()

        await until(lambda: process.poll() is not None, 60, "the service exits after SIGTERM")
        assert process.returncode == 0
