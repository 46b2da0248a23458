"""REST API: campaigns (create, edit, status, members, dispositions, retry rules, call lists from
customers, a CSV and another campaign, the contacts page) with the visibility rules, the
dial-time check and the do-not-call list."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse

from crm_core.db import UnitOfWorkFactory
from tests.conftest import SignIn, Staff
from tests.integration.campaign_support import customer, new_york

API = "/api/v1"
CALLER_ID = "+15005550006"  # the sandbox account's number


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def refused(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


async def test_a_supervisor_runs_a_campaign_and_agents_see_only_what_they_work(
    sign_in: SignIn, staff: Staff
) -> None:
    lead = await sign_in(staff.red_lead)
    created = await ok(
        await lead.post(
            f"{API}/campaigns",
            json={"name": "Renouvellements 续约", "caller_id": "+1 500 555 0006", "mode": "predictive"},
        ),
        201,
    )
    assert (
        created["caller_id"] == CALLER_ID
        and created["status"] == "draft"
        and created["team_id"] == staff.red.id
    )
    cid = created["id"]
    error = await refused(
        await lead.post(f"{API}/campaigns", json={"name": "x", "caller_id": "+12125550100"}),
        422,
        "invalid_input",
    )
    assert error["fields"] == {"caller_id": "+12125550100 is not one of the account's numbers"}
    members = await ok(await lead.put(f"{API}/campaigns/{cid}/members", json={"agent_ids": [staff.red_1.id]}))
    assert members["agent_ids"] == [staff.red_1.id]
    assert (await ok(await lead.post(f"{API}/campaigns/{cid}/start")))["status"] == "running"
    assert (await ok(await lead.post(f"{API}/campaigns/{cid}/pause")))["status"] == "paused"
    assert (await ok(await lead.post(f"{API}/campaigns/{cid}/stop")))["status"] == "stopped"
    await refused(await lead.post(f"{API}/campaigns/{cid}/start"), 409, "invalid_transition")
    await refused(
        await lead.patch(f"{API}/campaigns/{cid}", json={"name": "Again"}), 409, "invalid_transition"
    )

    worker = await sign_in(staff.red_1)
    assert [c["id"] for c in (await ok(await worker.get(f"{API}/campaigns")))["items"]] == [cid]
    await refused(await worker.patch(f"{API}/campaigns/{cid}", json={"name": "Mine"}), 403, "forbidden")
    other = await sign_in(staff.red_2)
    assert (await ok(await other.get(f"{API}/campaigns")))["items"] == []
    await refused(await other.get(f"{API}/campaigns/{cid}"), 404, "not_found")
    blue = await sign_in(staff.blue_lead)
    await refused(await blue.get(f"{API}/campaigns/{cid}/contacts"), 404, "not_found")
    admin = await sign_in(staff.admin)
    assert [c["id"] for c in (await ok(await admin.get(f"{API}/campaigns")))["items"]] == [cid]


async def test_dispositions_retry_rules_and_call_lists(
    sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    for n in (100, 101):
        await customer(uow_factory, new_york(n))
    lead = await sign_in(staff.red_lead)
    cid = (
        await ok(await lead.post(f"{API}/campaigns", json={"name": "Winter", "caller_id": CALLER_ID}), 201)
    )["id"]
    sale = {"label": "Sale 成交", "final": True, "converted": True, "value": "99.50"}
    assert (await ok(await lead.put(f"{API}/campaigns/{cid}/dispositions/sale", json=sale)))[
        "value"
    ] == "99.50"
    await ok(
        await lead.put(
            f"{API}/campaigns/{cid}/dispositions/cb", json={"label": "Call back", "callback": True}
        )
    )
    await refused(
        await lead.put(f"{API}/campaigns/{cid}/dispositions/x", json={"label": "x", "value": 5}),
        422,
        "invalid_input",
    )
    assert (await lead.delete(f"{API}/campaigns/{cid}/dispositions/cb")).status == 204
    listed = await ok(await lead.get(f"{API}/campaigns/{cid}/dispositions"))
    assert [d["code"] for d in listed["items"]] == ["sale"]
    rule = {"delay_seconds": 3600, "max_per_day": 2, "max_total": 5}
    assert (await ok(await lead.put(f"{API}/campaigns/{cid}/retry-rules/busy", json=rule)))[
        "outcome"
    ] == "busy"
    await refused(await lead.put(f"{API}/campaigns/{cid}/retry-rules/maybe", json=rule), 422, "invalid_input")

    loaded = await ok(await lead.post(f"{API}/campaigns/{cid}/contacts/from-customers", json={"pool": True}))
    assert (loaded["added"], loaded["already"]) == (2, 0)
    csv = f"display_name,phones,consent_voice\nNew,{new_york(102)},true\nOld,{new_york(100)},true\n"
    imported = await ok(
        await lead.post(
            f"{API}/campaigns/{cid}/contacts/import", data=csv.encode(), headers={"Content-Type": "text/csv"}
        )
    )
    assert (imported["added"], imported["already"]) == (1, 1) and imported["imported"]["created"] == 1
    page = await ok(
        await lead.get(f"{API}/campaigns/{cid}/contacts", params={"limit": 2, "state": "pending"})
    )
    assert page["total"] == 3 and [c["e164"] for c in page["items"]] == [new_york(100), new_york(101)]
    second = (
        await ok(await lead.post(f"{API}/campaigns", json={"name": "Next", "caller_id": CALLER_ID}), 201)
    )["id"]
    none = await ok(
        await lead.post(
            f"{API}/campaigns/{second}/contacts/from-campaign",
            json={"source_id": cid, "dispositions": ["sale"]},
        )
    )
    assert none["added"] == 0
    results = await ok(await lead.get(f"{API}/campaigns/{cid}/results"))
    assert (results["dials"], results["contacts"], results["roi"]) == (0, 3, None)
    assert (
        results["contacts_by_state"] == {"pending": 3}
        and results["abandonment"]["predictive_allowed"] is False
    )
    contact_id = page["items"][0]["id"]
    verdict = await ok(await lead.get(f"{API}/campaigns/{cid}/contacts/{contact_id}/dialable"))
    assert verdict["number"] == new_york(100) and isinstance(verdict["dialable"], bool)


async def test_the_do_not_call_list_and_the_dial_time_check(
    sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await customer(uow_factory, new_york(100), voice=False)
    agent = await sign_in(staff.red_1)
    added = await ok(await agent.post(f"{API}/do-not-call", json={"number": "+1 212 555 0100"}), 201)
    assert [(e["e164"], e["source"]) for e in added["items"]] == [(new_york(100), "api")]
    await ok(await agent.post(f"{API}/do-not-call", json={"number": new_york(100)}), 200)
    await refused(await agent.get(f"{API}/do-not-call"), 403, "forbidden")
    verdict = await ok(await agent.get(f"{API}/dialable", params={"number": new_york(100), "profile": "us"}))
    codes = {r["code"] for r in verdict["reasons"]}
    assert not verdict["dialable"] and {"internal-dnc", "no-voice-consent"} <= codes
    assert "no national do-not-call file has been imported" in verdict["warnings"]

    lead = await sign_in(staff.red_lead)
    company = await ok(
        await lead.post(
            f"{API}/do-not-call/import",
            data=f"number\n{new_york(101)}\nnot a number\n".encode(),
            headers={"Content-Type": "text/plain"},
        )
    )
    assert (company["added"], [r["line"] for r in company["rejected"]]) == (1, [3])
    national = await ok(
        await lead.post(
            f"{API}/do-not-call/import",
            params={"list": "national", "file_date": "2020-01-01"},
            data=f"{new_york(102)}\n".encode(),
            headers={"Content-Type": "text/plain"},
        )
    )
    assert national["added"] == 1 and "older than 31 days" in national["warnings"][0]
    listed = await ok(await lead.get(f"{API}/do-not-call", params={"national": "false"}))
    assert {e["e164"] for e in listed["items"]} == {new_york(100), new_york(101)}
    assert (await lead.delete(f"{API}/do-not-call/{new_york(100)}")).status == 204
    await refused(await lead.delete(f"{API}/do-not-call/{new_york(100)}"), 404, "not_found")
    await refused(await lead.delete(f"{API}/do-not-call/nonsense"), 404, "not_found")
    after = await ok(await agent.get(f"{API}/dialable", params={"number": new_york(100)}))
    assert "internal-dnc" not in {r["code"] for r in after["reasons"]}
