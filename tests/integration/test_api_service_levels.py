"""Service levels over HTTP: supervisors and admins keep calendars, policies and escalation
levels (agents are refused), bad calendars and rules are refused with the field named, the voice
hours are seeded as a calendar, and a ticket's SLA clock is shown to whoever may see the ticket."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from contact_center.service_levels.routes import SERVICE_LEVEL_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.models import utcnow
from crm_core.services.customers import create_customer
from crm_core.services.escalation import escalation_pass
from crm_core.services.tickets import SlaPolicy, open_ticket
from tests.conftest import SignIn, Staff
from tests.support.sessions import signed_in

API = "/api/v1"
WEEKDAYS = {d: "09:00-12:00, 13:00-18:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json() if resp.status != 204 else None
    assert resp.status == status, body
    return body


async def refused(resp: ClientResponse, status: int) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    assert resp.status == status, body
    return body


async def test_keeping_calendars_policies_and_escalations(sign_in: SignIn, staff: Staff) -> None:
    lead, agent = await sign_in(staff.red_lead), await sign_in(staff.red_1)
    calendars = (await ok(await lead.get(f"{API}/sla/calendars")))["items"]
    assert "voice" in [c["name"] for c in calendars]  # the voice hours, seeded at start
    shanghai = {
        "name": "上海办公室",
        "timezone": "Asia/Shanghai",
        "weekly": WEEKDAYS,
        "holidays": ["2026-10-01"],
    }
    calendar = await ok(await lead.post(f"{API}/sla/calendars", json=shanghai), 201)
    assert calendar["weekly"]["monday"] == "09:00-12:00, 13:00-18:00" and calendar["weekly"]["sunday"] == ""
    await refused(await lead.post(f"{API}/sla/calendars", json=shanghai), 409)
    bad_zone = await refused(
        await lead.post(f"{API}/sla/calendars", json={**shanghai, "name": "x", "timezone": "Mars/Base"}), 422
    )
    assert "time zone" in str(bad_zone)
    await refused(
        await lead.post(
            f"{API}/sla/calendars", json={**shanghai, "name": "y", "weekly": {"monday": "18:00-09:00"}}
        ),
        422,
    )
    await refused(await agent.post(f"{API}/sla/calendars", json={**shanghai, "name": "mine"}), 403)
    await refused(await agent.get(f"{API}/sla/calendars"), 403)

    policy_in = {
        "name": "VIP 贵宾",
        "position": 1,
        "vip": True,
        "calendar_id": calendar["id"],
        "first_response_minutes": 30,
        "resolution_minutes": 480,
    }
    policy = await ok(await lead.post(f"{API}/sla/policies", json=policy_in), 201)
    await refused(await agent.post(f"{API}/sla/policies", json={**policy_in, "name": "other"}), 403)
    await refused(await agent.get(f"{API}/sla/policies"), 403)
    changed = await ok(await lead.patch(f"{API}/sla/policies/{policy['id']}", json={"priority": "urgent"}))
    assert changed["priority"] == "urgent" and changed["vip"] is True

    rules = f"{API}/sla/policies/{policy['id']}/escalations"
    level = {"target": "first_response", "level": 1, "percent": 75, "actions": ["notify_assignee"]}
    created = await ok(await lead.post(rules, json=level), 201)
    await refused(await lead.post(rules, json=level), 409)
    both = {**level, "level": 2, "after_breach_minutes": 60}
    assert "percent" in str(await refused(await lead.post(rules, json=both), 422))
    no_team = {"target": "resolution", "level": 1, "after_breach_minutes": 0, "actions": ["reassign_team"]}
    await refused(await lead.post(rules, json=no_team), 422)
    await refused(await agent.post(rules, json={**level, "level": 3}), 403)
    assert [r["id"] for r in (await ok(await lead.get(rules)))["items"]] == [created["id"]]
    await refused(await agent.delete(f"{API}/sla/escalations/{created['id']}"), 403)
    await ok(await lead.delete(f"{API}/sla/escalations/{created['id']}"), 204)
    await ok(await lead.delete(f"{API}/sla/policies/{policy['id']}"), 204)
    await refused(await lead.delete(f"{API}/sla/policies/{policy['id']}"), 404)


async def test_a_tickets_sla_clock_is_shown_to_who_may_see_the_ticket(
    sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    admin = await sign_in(staff.admin)
    await ok(
        await admin.post(
            f"{API}/sla/policies",
            json={"name": "Everyone", "first_response_minutes": 60, "resolution_minutes": 600},
        ),
        201,
    )
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="CN", display_name="王芳")
        ticket = await open_ticket(
            uow, None, customer_id=customer.id, subject="发票", sla=SlaPolicy(), assignee_id=staff.red_1.id,
            team_id=staff.red.id,
        )  # fmt: skip
        await uow.commit()
    mine = await ok(await (await sign_in(staff.red_1)).get(f"{API}/tickets/{ticket.id}/sla"))
    assert mine["policy_id"] is not None and mine["first_response_due_at"] is not None
    assert mine["paused"] is False and mine["escalations"] == []
    await ok(await (await sign_in(staff.red_lead)).get(f"{API}/tickets/{ticket.id}/sla"))
    await refused(await (await sign_in(staff.blue_1)).get(f"{API}/tickets/{ticket.id}/sla"), 404)
    # A shorter target: the open tickets' clocks are recomputed by the next escalation pass.
    policy_id = mine["policy_id"]
    await ok(await admin.patch(f"{API}/sla/policies/{policy_id}", json={"first_response_minutes": 30}))
    await escalation_pass(uow_factory, utcnow())
    shorter = await ok(await (await sign_in(staff.red_1)).get(f"{API}/tickets/{ticket.id}/sla"))
    due = datetime.fromisoformat(shorter["first_response_due_at"])
    assert due == ticket.created_at + timedelta(minutes=30)


async def test_an_escalation_reaches_the_assignees_socket(
    client: TestClient[Any, Any], sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    admin = await sign_in(staff.admin)
    policy = await ok(
        await admin.post(f"{API}/sla/policies", json={"name": "Fast 快速", "first_response_minutes": 10}), 201
    )
    level = {"target": "first_response", "level": 1, "percent": 50, "actions": ["notify_assignee"]}
    await ok(await admin.post(f"{API}/sla/policies/{policy['id']}/escalations", json=level), 201)
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="Ada")
        ticket = await open_ticket(
            uow, None, customer_id=customer.id, subject="Slow / 慢", sla=SlaPolicy(), assignee_id=staff.red_1.id,
            team_id=staff.red.id, now=utcnow() - timedelta(minutes=6),
        )  # fmt: skip
        await uow.commit()
    agent = await signed_in(client, staff.red_1)
    ws = await client.ws_connect("/ws/agent", headers={"Cookie": agent.headers["Cookie"]})
    try:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        report = await client.app[SERVICE_LEVEL_DESK].get().escalate()
        assert report.fired == 1
        async with asyncio.timeout(5):
            while (frame := await ws.receive_json())["type"] != "ticket.escalated":
                pass
        assert (frame["ticket_id"], frame["level"], frame["target"]) == (ticket.id, 1, "first_response")
        assert frame["actions"] == ["notify_assignee"]
    finally:
        await ws.close()
