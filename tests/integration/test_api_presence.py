"""REST API: my presence, my agents' presence (supervisors, admins), and presence.changed events.

The app picks its presence store as in production: Redis when REDIS_URL is set, memory otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState, PresenceStore
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import Agent, utcnow
from tests.conftest import SignIn, Staff
from tests.support.waiting import until

API = "/api/v1"
Client = TestClient[Any, Any]


def everyone(staff: Staff) -> list[Agent]:
    return [staff.admin, staff.red_lead, staff.red_1, staff.red_2, staff.blue_lead, staff.blue_1]


@pytest.fixture
def presence(client: Client) -> PresenceStore:
    store: PresenceStore = client.app[RUNTIME].presence
    return store


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _no_presence_left_over(presence: PresenceStore, staff: Staff) -> AsyncIterator[None]:
    """Redis outlives the app, and SQLite may hand a new agent an old agent's id."""
    for agent in everyone(staff):
        await presence.forget(agent.id)
    yield
    for agent in everyone(staff):
        await presence.forget(agent.id)


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def error(resp: ClientResponse, status: int, code: str) -> None:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code, body


async def subscribe(client: Client) -> list[DomainEvent]:
    received: list[DomainEvent] = []

    async def handler(event: DomainEvent) -> None:
        received.append(event)

    client.app[RUNTIME].bus.subscribe(handler)
    return received


async def wait_for(received: list[DomainEvent], predicate: Any, timeout: float = 5.0) -> DomainEvent:
    def found() -> DomainEvent | None:
        return next((e for e in received if e.name == "presence.changed" and predicate(e.payload)), None)

    return await until(found, timeout, "presence.changed")


async def test_my_presence_starts_offline(sign_in: SignIn, staff: Staff) -> None:
    me = await sign_in(staff.red_1)
    body = await ok(await me.get(f"{API}/presence/me"))
    assert body == {
        "agent_id": staff.red_1.id,
        "state": "offline",
        "since": "1970-01-01T00:00:00Z",
        "until": None,
        "call_sid": None,
        "seconds_in_state": None,
    }


async def test_set_my_presence_and_the_event(client: Client, sign_in: SignIn, staff: Staff) -> None:
    received = await subscribe(client)
    me = await sign_in(staff.red_1)
    before = utcnow()
    body = await ok(await me.request("PUT", f"{API}/presence/me", json={"state": "available"}))
    after = utcnow()
    assert body["agent_id"] == staff.red_1.id and body["state"] == "available"
    since = datetime.fromisoformat(body["since"])
    assert before <= since <= after and body["until"] is None
    assert 0 <= body["seconds_in_state"] <= (after - since).total_seconds()
    assert (await ok(await me.get(f"{API}/presence/me")))["state"] == "available"
    event = await wait_for(received, lambda p: p["agent_id"] == staff.red_1.id)
    assert event.payload["state"] == "available"
    assert set(event.payload) == {"agent_id", "state", "since", "until", "call_sid"}
    await ok(await me.request("PUT", f"{API}/presence/me", json={"state": "away"}))
    await wait_for(received, lambda p: p["agent_id"] == staff.red_1.id and p["state"] == "away")


@pytest.mark.parametrize(
    "body", [{"state": "on-call"}, {"state": "ringing"}, {"state": "wrap-up"}, {"state": "busy"}, {}]
)
async def test_agents_choose_only_available_away_offline(
    sign_in: SignIn, staff: Staff, presence: PresenceStore, body: dict[str, Any]
) -> None:
    me = await sign_in(staff.red_1)
    await error(await me.request("PUT", f"{API}/presence/me", json=body), 422, "invalid_input")
    assert (await presence.get(staff.red_1.id)).state is AgentState.OFFLINE


async def test_available_ends_wrap_up_early(sign_in: SignIn, staff: Staff, presence: PresenceStore) -> None:
    await presence.set(staff.red_1.id, AgentState.WRAP_UP, call_sid="CA1", wrap_up_seconds=300)
    me = await sign_in(staff.red_1)
    body = await ok(await me.get(f"{API}/presence/me"))
    assert body["state"] == "wrap-up" and body["until"] and body["call_sid"] == "CA1"
    body = await ok(await me.request("PUT", f"{API}/presence/me", json={"state": "available"}))
    assert body["state"] == "available" and body["until"] is None
    assert (await presence.get(staff.red_1.id)).state is AgentState.AVAILABLE


async def test_agents_may_not_list_presence(sign_in: SignIn, staff: Staff) -> None:
    me = await sign_in(staff.red_1)
    await error(await me.get(f"{API}/presence"), 403, "forbidden")


async def test_supervisor_sees_their_team(
    sign_in: SignIn, staff: Staff, presence: PresenceStore, uow_factory: UnitOfWorkFactory
) -> None:
    await presence.set(staff.red_2.id, AgentState.ON_CALL, call_sid="CA9")
    await presence.set(staff.blue_1.id, AgentState.AVAILABLE)
    lead = await sign_in(staff.red_lead)
    items = (await ok(await lead.get(f"{API}/presence")))["items"]
    assert [i["login"] for i in items] == ["red-lead", "red-1", "red-2"]
    red_2 = items[2]
    assert red_2["agent_id"] == staff.red_2.id
    assert red_2["display_name"] == "Red-2" and red_2["team_id"] == staff.red.id
    assert red_2["state"] == "on-call" and red_2["call_sid"] == "CA9"
    assert red_2["seconds_in_state"] >= 0 and red_2["until"] is None
    assert items[1]["state"] == "offline" and items[1]["seconds_in_state"] is None
    # Inactive agents are left out.
    async with uow_factory() as uow:
        await uow.session.execute(update(Agent).where(Agent.id == staff.red_2.id).values(active=False))
        await uow.commit()
    items = (await ok(await lead.get(f"{API}/presence")))["items"]
    assert [i["login"] for i in items] == ["red-lead", "red-1"]


async def test_admin_sees_everyone_as_documented(client: Client, sign_in: SignIn, staff: Staff) -> None:
    admin = await sign_in(staff.admin)
    await ok(await admin.request("PUT", f"{API}/presence/{staff.blue_1.id}", json={"state": "available"}))
    body = await ok(await admin.get(f"{API}/presence"))
    assert {i["agent_id"] for i in body["items"]} == {a.id for a in everyone(staff)}
    doc = await (await client.get("/api/openapi.json")).json()
    schemas = {"components": doc["components"]}
    jsonschema.validate(body, {"$ref": "#/components/schemas/PresenceList", **schemas})
    mine = await ok(await admin.get(f"{API}/presence/me"))
    jsonschema.validate(mine, {"$ref": "#/components/schemas/PresenceOut", **schemas})


async def test_supervisor_changes_their_agents_only(
    client: Client, sign_in: SignIn, staff: Staff, presence: PresenceStore
) -> None:
    received = await subscribe(client)
    lead = await sign_in(staff.red_lead)
    await presence.set(staff.red_1.id, AgentState.WRAP_UP, wrap_up_seconds=300)
    body = await ok(
        await lead.request("PUT", f"{API}/presence/{staff.red_1.id}", json={"state": "available"})
    )
    assert body["agent_id"] == staff.red_1.id and body["login"] == "red-1" and body["state"] == "available"
    assert (await presence.get(staff.red_1.id)).state is AgentState.AVAILABLE
    await wait_for(received, lambda p: p["agent_id"] == staff.red_1.id and p["state"] == "available")
    await ok(await lead.request("PUT", f"{API}/presence/{staff.red_lead.id}", json={"state": "away"}))
    # Outside the team, or no such agent: 404 alike.
    for agent_id in (staff.blue_1.id, staff.admin.id, 999_999):
        resp = await lead.request("PUT", f"{API}/presence/{agent_id}", json={"state": "away"})
        await error(resp, 404, "not_found")
    assert (await presence.get(staff.blue_1.id)).state is AgentState.OFFLINE
    await error(await lead.request("PUT", f"{API}/presence/abc", json={"state": "away"}), 404, "not_found")
    resp = await lead.request("PUT", f"{API}/presence/{staff.red_2.id}", json={"state": "on-call"})
    await error(resp, 422, "invalid_input")


async def test_agents_may_not_change_others(sign_in: SignIn, staff: Staff, presence: PresenceStore) -> None:
    me = await sign_in(staff.red_1)
    resp = await me.request("PUT", f"{API}/presence/{staff.red_2.id}", json={"state": "available"})
    await error(resp, 403, "forbidden")
    assert (await presence.get(staff.red_2.id)).state is AgentState.OFFLINE


async def test_admin_changes_anyone(sign_in: SignIn, staff: Staff, presence: PresenceStore) -> None:
    admin = await sign_in(staff.admin)
    for agent in (staff.blue_1, staff.red_lead):
        await ok(await admin.request("PUT", f"{API}/presence/{agent.id}", json={"state": "away"}))
        assert (await presence.get(agent.id)).state is AgentState.AWAY


async def test_presence_needs_sign_in(client: Client) -> None:
    assert (await client.get(f"{API}/presence/me")).status == 401
    assert (await client.put(f"{API}/presence/me", json={"state": "available"})).status == 401
