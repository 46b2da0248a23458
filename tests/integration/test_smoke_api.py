from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import SignIn, Staff


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["checks"]["database"] == "ok"


async def test_create_and_read_customer(client: TestClient[Any, Any], staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    resp = await me.post(
        "/api/v1/customers",
        json={"display_name": "Ada Lovelace", "phones": ["(202) 555-0143"], "emails": ["Ada@Example.COM"]},
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["phones"] == [{"e164": "+12025550143", "label": None}]
    assert created["emails"][0]["address"] == "ada@example.com"
    resp = await me.get(f"/api/v1/customers/{created['id']}")
    assert resp.status == 200
