"""The wallboard's data: GET /api/v1/wallboard figures under visibility, and the realtime hub's
team fan-out (supervisors get their team's presence and calls, admins everyone's)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Ticket, utcnow
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from tests.conftest import SignIn, Staff

Client = TestClient[Any, Any]


async def _customer(uow_factory: UnitOfWorkFactory, name: str, owner_id: int) -> int:
    async with uow_factory() as uow:
        customer = Customer(display_name=name, owner_id=owner_id)
        uow.session.add(customer)
        await uow.session.flush()
        await uow.commit()
        return customer.id


async def _calls_and_messages(
    uow_factory: UnitOfWorkFactory, customer_id: int, tag: str, agent_id: int
) -> None:
    now = utcnow()
    async with uow_factory() as uow:
        for n, (answer_after, missed) in enumerate([(20, False), (40, False), (None, True)]):
            started = now - timedelta(minutes=10 + n)
            logged = await log_interaction(
                uow,
                channel=Channel.VOICE,
                direction=Direction.INBOUND,
                customer_id=customer_id,
                external_id=f"CA-{tag}-{n}",
                status="completed",
                started_at=started,
                meta={"from": "+12025550100"},
            )
            if answer_after is not None:
                logged.interaction.answered_at = started + timedelta(seconds=answer_after)
            logged.interaction.missed = missed
        await log_interaction(
            uow, channel=Channel.EMAIL, direction=Direction.INBOUND, customer_id=customer_id, subject="hi"
        )
        await log_interaction(
            uow, channel=Channel.SMS, direction=Direction.OUTBOUND, customer_id=customer_id, body="on my way"
        )
        await log_interaction(
            uow,
            channel=Channel.CHAT,
            direction=Direction.INBOUND,
            customer_id=customer_id,
            external_id=f"chat-{tag}",
            status="active",
            agent_id=agent_id,
        )
        # Yesterday's call is not today's.
        await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=customer_id,
            external_id=f"CA-{tag}-old",
            started_at=now - timedelta(days=2),
        )
        await uow.commit()


async def test_wallboard_figures_are_today_s_and_limited_to_what_the_supervisor_sees(
    client: Client, sign_in: SignIn, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    red_customer = await _customer(uow_factory, "Red client", staff.red_1.id)
    blue_customer = await _customer(uow_factory, "Blue client", staff.blue_1.id)
    await _calls_and_messages(uow_factory, red_customer, "red", staff.red_1.id)
    await _calls_and_messages(uow_factory, blue_customer, "blue", staff.blue_1.id)

    admin = await sign_in(staff.admin)
    resp = await admin.post(
        "/api/v1/tickets",
        json={"customer_id": red_customer, "subject": "Late one", "assignee_id": staff.red_1.id},
    )
    late = (await resp.json())["id"]
    resp = await admin.post("/api/v1/tickets", json={"customer_id": red_customer, "subject": "Far away"})
    assert resp.status == 201
    async with uow_factory() as uow:
        await uow.session.execute(
            update(Ticket)
            .where(Ticket.id == late)
            .values(first_response_due_at=utcnow() - timedelta(minutes=5))
        )
        await uow.commit()

    since = (utcnow() - timedelta(hours=1)).isoformat()
    lead = await sign_in(staff.red_lead)
    resp = await lead.get("/api/v1/wallboard", params={"since": since})
    assert resp.status == 200, await resp.text()
    board = await resp.json()
    volumes = {v["channel"]: (v["inbound"], v["outbound"]) for v in board["volumes"]}
    assert volumes == {"voice": (3, 0), "email": (1, 0), "sms": (0, 1), "chat": (1, 0)}
    assert board["calls"] == {
        "offered": 3,
        "answered": 2,
        "abandoned": 1,
        "average_speed_of_answer_seconds": 30.0,
    }
    at_risk = board["tickets_at_risk"]
    assert [(t["ticket"]["id"], t["breached"]) for t in at_risk] == [(late, True)]

    assert [(c["customer_name"], c["agent_id"], c["status"]) for c in board["chats"]] == [
        ("Red client", staff.red_1.id, "active")
    ]

    resp = await (await sign_in(staff.admin)).get("/api/v1/wallboard", params={"since": since})
    everything = await resp.json()
    assert {v["channel"]: v["inbound"] for v in everything["volumes"]}["voice"] == 6
    assert len(everything["chats"]) == 2

    resp = await (await sign_in(staff.red_1)).get("/api/v1/wallboard")
    assert resp.status == 403
    resp = await lead.get("/api/v1/wallboard", params={"since": "yesterday"})
    assert resp.status == 422
    # A bare number is not an ISO 8601 time (it is not read as Unix seconds either).
    resp = await lead.get("/api/v1/wallboard", params={"since": "1700000000"})
    assert resp.status == 422
    assert "since" in (await resp.json())["error"]["fields"]


async def test_a_start_at_either_end_of_the_calendar_is_clamped_not_an_error(
    client: Client, sign_in: SignIn, staff: Staff
) -> None:
    lead = await sign_in(staff.red_lead)
    # 9999-12-31 23:59 at UTC-23:59 lies beyond the last date PostgreSQL's driver can send.
    for since in ("9999-12-31T23:59:00-23:59", "9999-12-31T23:59:59", "0001-01-01T00:00:00+23:59"):
        resp = await lead.get("/api/v1/wallboard", params={"since": since})
        assert resp.status == 200, (since, await resp.text())
        board = await resp.json()
        assert board["since"] <= board["now"], since


async def test_console_config_tells_how_calls_are_answered(
    client: Client, sign_in: SignIn, staff: Staff
) -> None:
    resp = await (await sign_in(staff.red_1)).get("/api/v1/console/config")
    assert resp.status == 200
    config = await resp.json()
    assert config["softphone"] == "sandbox" and config["sandbox_base"] == "/twilio-sandbox"
    assert "resolved" in config["dispositions"]
    resp = await client.get("/api/v1/console/config")
    assert resp.status == 401


async def _frames(ws: Any, seconds: float) -> list[dict[str, Any]]:
    frames = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await ws.receive_json())
    except TimeoutError:
        pass
    return frames


async def test_supervisors_receive_their_team_s_presence_and_admins_everyone_s(
    client: Client, sign_in: SignIn, staff: Staff
) -> None:
    lead = await sign_in(staff.red_lead)
    admin = await sign_in(staff.admin)
    agent = await sign_in(staff.red_2)
    sockets = {}
    for name, session in (("lead", lead), ("admin", admin), ("agent", agent)):
        ws = await client.ws_connect("/ws/agent", headers={"Cookie": session.headers["Cookie"]})
        assert (await ws.receive_json())["type"] == "hello"
        sockets[name] = ws

    for who in (staff.red_1, staff.blue_1):
        session = await sign_in(who)
        resp = await session.request("PUT", "/api/v1/presence/me", json={"state": "away"})
        assert resp.status == 200

    lead_frames = [f for f in await _frames(sockets["lead"], 0.5) if f["type"] == "presence.changed"]
    admin_frames = [f for f in await _frames(sockets["admin"], 0.3) if f["type"] == "presence.changed"]
    agent_frames = await _frames(sockets["agent"], 0.3)
    assert [(f["agent_id"], f["state"], f["scope"]) for f in lead_frames] == [
        (staff.red_1.id, "away", "team")
    ]
    assert {f["agent_id"] for f in admin_frames} == {staff.red_1.id, staff.blue_1.id}
    assert agent_frames == []  # agents get their own events only
    for ws in sockets.values():
        await ws.close()
