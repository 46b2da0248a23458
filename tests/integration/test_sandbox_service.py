"""The sandbox mounted on the real service: its signed webhooks pass the service's own verifier,
the call desk's TwiML runs, and an agent answers through the simulated browser."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.presence import AgentState
from contact_center.sandbox import create_sandbox_app, sandbox_config_from_settings
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from tests.conftest import Staff, isolated_settings

DEMO_NUMBER = "+15005550006"
CALLER = "+12025550177"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    port = _free_port()
    site = isolated_settings(settings).with_overrides(server={"public_base_url": f"http://127.0.0.1:{port}"})
    app = create_app(site)
    config = dataclasses.replace(sandbox_config_from_settings(site), time_scale=0.01, seed=1)
    app.add_subapp("/twilio-sandbox", create_sandbox_app(config))
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
        yield client


async def _state(client: TestClient[Any, Any], sid: str) -> dict[str, Any]:
    resp = await client.get(f"/twilio-sandbox/sandbox/calls/{sid}")
    assert resp.status == 200
    return dict(await resp.json())


async def _until(client: TestClient[Any, Any], sid: str, check: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = await _state(client, sid)
        if check(state):
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.01)


async def test_inbound_call_reaches_an_available_agent_through_the_sandbox(
    service: TestClient[Any, Any], staff: Staff
) -> None:
    await service.app[RUNTIME].presence.set(staff.red_1.id, AgentState.AVAILABLE)
    resp = await service.post("/twilio-sandbox/sandbox/calls", json={"from": CALLER, "to": DEMO_NUMBER})
    assert resp.status == 201, await resp.text()
    sid = (await resp.json())["call_sid"]

    state = await _until(service, sid, lambda s: s["legs"] or s["ended"])
    assert not [e for e in state["log"] if e["event"] == "error"], state["log"]
    leg = await _state(service, state["legs"][0])
    identity = leg["to"].removeprefix("client:")
    resp = await service.post(f"/twilio-sandbox/sandbox/clients/{identity}/answer", json={"call_sid": sid})
    assert resp.status == 200 and (await resp.json())["status"] == "in-progress"
    await _until(service, sid, lambda s: s["bridged_with"] == leg["sid"])

    resp = await service.post(f"/twilio-sandbox/sandbox/calls/{sid}/hangup", json={"side": "agent"})
    assert resp.status == 200
    final = await _until(service, sid, lambda s: s["settled"])
    errors = [e for e in final["log"] if e["event"] == "error"]
    assert not errors, errors  # every webhook (voice, dial action, status) passed the service's verifier
    webhooks = {e["url"].split("?")[0].rsplit("/", 1)[-1] for e in final["log"] if e["event"] == "webhook"}
    assert {"inbound", "dial-action", "status"} <= webhooks
    assert final["status"] == "completed"
