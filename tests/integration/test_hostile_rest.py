"""Hostile payloads replayed against every REST route and the agent socket: each answers 4xx
(never 500), nothing is half-stored, and the service works as before afterwards."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from contact_center.api.spec import Endpoint
from contact_center.app import ENDPOINTS
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Ticket
from tests.conftest import Session, SignIn, Staff

DEEP = "[" * 20_000 + "]" * 20_000
DEEP_OBJECT = '{"a":' * 3_000 + "1" + "}" * 3_000
HOSTILE_BODIES: dict[str, str] = {
    "nul in a value": json.dumps({"display_name": "a\x00b", "body": "x\x00", "login": "\x00"}),
    "nul in a key": '{"display\\u0000name": "x"}',
    "lone surrogate": '{"display_name": "\\udc80", "text": "\\ud800"}',
    "deep array": DEEP,
    "deep object": DEEP_OBJECT,
    "huge integer": json.dumps({"owner_id": 2**70, "team_id": -(2**70), "id": 10**40}),
    "huge float": '{"owner_id": 1e400}',
    "odd unicode": json.dumps({"display_name": "\u202e\ufeff\u200b" * 100 + "名" * 300}),
    "oversized string": json.dumps({"display_name": "x" * 500_000}),
}
HOSTILE_QUERIES = ("q=%00", "limit=99999999999999999999999", "before_id=%00", "status=%F0%9F%92%A9" * 50)


def _path(endpoint: Endpoint, customer_id: int, ticket_id: int) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in endpoint.text_params:
            return "%00"
        return str(ticket_id if "ticket" in endpoint.path else customer_id)

    return re.sub(r"{(\w+)}", value, endpoint.path)


async def _counts(uow_factory: UnitOfWorkFactory) -> tuple[int, ...]:
    async with uow_factory() as uow:
        counts = []
        for model in (Customer, Ticket):
            counts.append(int(await uow.session.scalar(select(func.count()).select_from(model)) or 0))
        return tuple(counts)


async def _customer_and_ticket(admin: Session) -> tuple[int, int]:
    resp = await admin.post(
        "/api/v1/customers", json={"display_name": "Hostile Probe", "phones": ["+14155550199"]}
    )
    assert resp.status == 201, await resp.text()
    customer_id = (await resp.json())["id"]
    resp = await admin.post("/api/v1/tickets", json={"subject": "probe", "customer_id": customer_id})
    assert resp.status == 201, await resp.text()
    return customer_id, (await resp.json())["id"]


async def test_every_route_refuses_hostile_bodies_and_queries_with_a_4xx(
    client: TestClient[Any, Any], staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    admin = await sign_in(staff.admin)
    customer_id, ticket_id = await _customer_and_ticket(admin)
    before = await _counts(uow_factory)
    endpoints: list[Endpoint] = client.app[ENDPOINTS]
    failures: list[str] = []
    probes = 0
    for endpoint in endpoints:
        if endpoint.path.startswith("/api/v1/auth/") or endpoint.path.endswith("/sign-out"):
            continue  # signing out would end the prober's session (sign-in has its own test)
        path = _path(endpoint, customer_id, ticket_id)
        sends_json = endpoint.body is not None
        if sends_json or endpoint.method in ("POST", "PATCH", "PUT"):
            for name, raw in HOSTILE_BODIES.items():
                resp = await admin.request(
                    endpoint.method, path, data=raw, headers={"Content-Type": "application/json"}
                )
                probes += 1
                if resp.status >= 500 or resp.status == 401 or (sends_json and resp.status < 400):
                    failures.append(f"{endpoint.method} {endpoint.path} [{name}]: {resp.status}")
        if endpoint.query is not None:
            for query in HOSTILE_QUERIES:
                resp = await admin.request(endpoint.method, f"{path}?{query}")
                probes += 1
                if resp.status >= 500 or resp.status == 401:
                    failures.append(f"{endpoint.method} {endpoint.path}?{query[:20]}: {resp.status}")
    assert probes > 100
    assert failures == []
    # Nothing was half-stored, and the service still answers as before.
    assert await _counts(uow_factory) == before
    resp = await admin.get(f"/api/v1/customers/{customer_id}")
    assert resp.status == 200 and (await resp.json())["display_name"] == "Hostile Probe"


async def test_sign_in_refuses_hostile_bodies(client: TestClient[Any, Any], staff: Staff) -> None:
    for name, raw in HOSTILE_BODIES.items():
        resp = await client.post("/api/v1/auth/login", data=raw, headers={"Content-Type": "application/json"})
        assert 400 <= resp.status < 500, (name, resp.status)
        body = await resp.json()
        assert body["error"]["status"] == resp.status
    resp = await client.post(
        "/api/v1/auth/login", json={"login": "admin", "password": "correct horse battery"}
    )
    assert resp.status == 200


async def test_the_agent_socket_survives_deep_frames_and_huge_ids(
    client: TestClient[Any, Any], staff: Staff, sign_in: SignIn
) -> None:
    agent = await sign_in(staff.red_1)
    ws = await client.ws_connect("/ws/agent", headers={"Cookie": agent.headers["Cookie"]})
    try:
        for frame in (
            DEEP,
            DEEP_OBJECT,
            json.dumps({"type": "chat.typing", "conversation_id": 2**70, "typing": True}),
            json.dumps({"type": "chat.typing", "conversation_id": "\x00", "typing": True}),
            '{"type": "chat.typing\\u0000", "conversation_id": 1, "typing": true}',
        ):
            await ws.send_str(frame)
            while True:
                reply = await ws.receive_json(timeout=10)
                if reply.get("type") == "error":
                    break
            assert reply["code"] in ("unknown_message", "refused"), reply
        await ws.send_str(json.dumps({"type": "chat.typing", "conversation_id": 1, "typing": True}))
        while (reply := await ws.receive_json(timeout=10)).get("type") != "error":
            pass
        assert reply["code"] == "refused"  # a real request still reaches its handler
        assert not ws.closed
    finally:
        await ws.close()
