"""The audit trail of customers and tickets through the API, under the same visibility rules."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import SignIn, Staff

API = "/api/v1"


async def test_customer_and_ticket_history(
    client: TestClient[Any, Any], staff: Staff, sign_in: SignIn
) -> None:
    red_1 = await sign_in(staff.red_1)
    resp = await red_1.post(f"{API}/customers", json={"display_name": "Ada", "owner_id": staff.red_1.id})
    customer = await resp.json()
    await red_1.patch(f"{API}/customers/{customer['id']}", json={"company": "Engines Ltd"})
    resp = await red_1.post(
        f"{API}/tickets",
        json={"customer_id": customer["id"], "subject": "Broken", "assignee_id": staff.red_1.id},
    )
    ticket = await resp.json()
    await red_1.post(f"{API}/tickets/{ticket['id']}/transition", json={"status": "open"})

    resp = await red_1.get(f"{API}/customers/{customer['id']}/history")
    assert resp.status == 200
    trail = (await resp.json())["items"]
    assert [e["action"] for e in trail] == ["created", "updated"]
    assert trail[1]["changes"] == {"company": [None, "Engines Ltd"]}
    assert {e["actor_id"] for e in trail} == {staff.red_1.id}

    resp = await red_1.get(f"{API}/tickets/{ticket['id']}/history")
    trail = (await resp.json())["items"]
    assert [e["action"] for e in trail] == ["opened", "updated"]
    assert trail[1]["changes"] == {"status": ["new", "open"]}

    blue_1 = await sign_in(staff.blue_1)
    assert (await blue_1.get(f"{API}/customers/{customer['id']}/history")).status == 404
    assert (await blue_1.get(f"{API}/tickets/{ticket['id']}/history")).status == 404
    admin = await sign_in(staff.admin)
    assert (await admin.get(f"{API}/tickets/{ticket['id']}/history")).status == 200
