"""The sandbox mounted on the real service: its signed webhooks pass the service's own verifier,
the call desk's TwiML runs, and an agent answers through the simulated browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN
from contact_center.voice.desk import CallDesk
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction, Ticket
from crm_core.voice import CallDecision, InboundCall
from tests.conftest import Staff, isolated_settings
from tests.support.sessions import signed_in
from tests.support.waiting import eventually, free_port

DEMO_NUMBER = "+15005550006"
CALLER = "+12025550177"


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"}, sandbox={"time_scale": 0.01, "seed": 1}
    )
    # With no Twilio account configured, the service mounts the sandbox itself.
    app = create_app(site)
    # The service's own tests drive the sandbox with its control token.
    headers = {CONTROL_TOKEN_HEADER: app[SANDBOX_CONTROL_TOKEN]}
    async with TestClient(TestServer(app, host="127.0.0.1", port=port), headers=headers) as client:
        yield client


async def _state(client: TestClient[Any, Any], sid: str) -> dict[str, Any]:
    resp = await client.get(f"/twilio-sandbox/sandbox/calls/{sid}")
    assert resp.status == 200
    return dict(await resp.json())


async def _until(client: TestClient[Any, Any], sid: str, check: Any, timeout: float = 10) -> dict[str, Any]:
    """The call's state once ``check`` holds for it."""

    async def state() -> dict[str, Any] | None:
        current = await _state(client, sid)
        return current if check(current) else None

    return dict(await eventually(state, timeout, f"call {sid}"))


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


async def test_a_queued_caller_goes_to_the_agent_who_frees_up(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    resp = await service.post("/twilio-sandbox/sandbox/calls", json={"from": CALLER, "to": DEMO_NUMBER})
    sid = (await resp.json())["call_sid"]
    await _until(service, sid, lambda s: any(e["event"] == "enqueued" for e in s["log"]) or s["ended"])

    agent = await signed_in(service, staff.blue_1)
    resp = await agent.put("/api/v1/presence/me", json={"state": "available"})
    assert resp.status == 200

    # The service takes the caller out of the queue through the sandbox's REST API ...
    state = await _until(service, sid, lambda s: s["legs"] or s["ended"])
    leg = await _state(service, state["legs"][0])
    assert leg["to"] == f"client:agent-{staff.blue_1.id}"
    # ... and the agent answers in the (simulated) browser.
    resp = await service.post(
        f"/twilio-sandbox/sandbox/clients/agent-{staff.blue_1.id}/answer", json={"call_sid": sid}
    )
    assert resp.status == 200
    await _until(service, sid, lambda s: s["bridged_with"] == leg["sid"])
    presence = service.app[RUNTIME].presence

    async def on_call() -> bool:  # the agent leg's "answered" callback follows the bridge
        return (await presence.get(staff.blue_1.id)).state is AgentState.ON_CALL

    await eventually(on_call, timeout=5)
    assert (await service.app[RUNTIME].presence.get(staff.blue_1.id)).call_sid == sid
    await service.post(f"/twilio-sandbox/sandbox/calls/{sid}/hangup", json={"side": "caller"})
    final = await _until(service, sid, lambda s: s["settled"])
    assert not [e for e in final["log"] if e["event"] == "error"], final["log"]
    async with uow_factory() as uow:
        row = await uow.session.scalar(select(Interaction).where(Interaction.external_id == sid))
        assert row is not None
        assert (row.status, row.agent_id, row.ticket_id) == ("completed", staff.blue_1.id, None)


async def test_a_call_whose_webhook_failed_is_called_back(
    service: TestClient[Any, Any], uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def out_of_order(self: CallDesk, call: InboundCall) -> CallDecision:
        raise RuntimeError("the database is away")

    monkeypatch.setattr(CallDesk, "inbound_call", out_of_order)
    resp = await service.post("/twilio-sandbox/sandbox/calls", json={"from": CALLER, "to": DEMO_NUMBER})
    sid = (await resp.json())["call_sid"]
    # Twilio gets a 500, tells the caller there was an application error and hangs up.
    final = await _until(service, sid, lambda s: s["settled"])
    assert [e["code"] for e in final["log"] if e["event"] == "error"] == [11200]

    # Its final status callback reaches the service, which logs the call as missed.
    async def missed() -> Interaction | None:
        async with uow_factory() as uow:
            row = await uow.session.scalar(select(Interaction).where(Interaction.external_id == sid))
        return row if row is not None and row.ticket_id is not None else None

    row = await eventually(missed, timeout=5)
    assert row.missed is True and row.meta["from"] == CALLER
    async with uow_factory() as uow:
        ticket = await uow.session.get_one(Ticket, row.ticket_id)
    assert ticket.category == "callback"
