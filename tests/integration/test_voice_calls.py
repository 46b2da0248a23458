"""Inbound calls over signed Twilio webhooks: routing, screen-pop on the agent socket, queue,
voicemail, missed-call tickets, and callbacks delivered twice or out of order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from contact_center.voice.wiring import CALL_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import Customer, Interaction, Ticket, TicketComment
from crm_core.types import Channel
from tests.conftest import SignIn, Staff, isolated_settings
from tests.support.agent_socket import agent_socket, next_of, nothing_of
from tests.support.agents import available
from tests.support.sessions import signed_in
from tests.support.voice_calls import (
    CALLER,
    VOICE,
    Twilio,
    call_sid,
    dialed_identity,
    known_customer,
    voice_rows,
    with_rest_double,
)
from tests.support.waiting import until


async def test_known_caller_pops_the_card_on_the_chosen_agent(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await known_customer(uow_factory)
    await available(client, staff.red_1)
    ws = await agent_socket(client, staff.red_1.login)
    other = await agent_socket(client, staff.red_2.login)
    sid = call_sid()
    twiml = await twilio.incoming(sid)
    assert dialed_identity(twiml) == f"agent-{staff.red_1.id}"
    dial = twiml.find("./Dial")
    assert dial is not None and dial.get("action", "").endswith(f"/dial-action?agent={staff.red_1.id}")
    pop = await next_of(ws, "call.screen_pop")
    assert pop["call_sid"] == sid
    card = pop["card"]
    assert card["customer_id"] == customer_id and card["display_name"] == "Ada Lovelace"
    # History from other channels is on the card.
    assert [i["channel"] for i in card["recent_interactions"]] == ["voice", "email"]
    await nothing_of(other, "call.screen_pop")
    assert (await client.app[RUNTIME].presence.get(staff.red_1.id)).state is AgentState.RINGING
    await ws.close()
    await other.close()


async def test_forged_or_missing_signature_is_refused_and_nothing_is_logged(
    twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    params = {"CallSid": call_sid(), "From": CALLER, "To": "+15005550006", "CallStatus": "ringing"}
    assert (await twilio.post(f"{VOICE}/inbound", params, signature="bm90IHRoZSBzaWduYXR1cmU=")).status == 403
    assert (await twilio.post(f"{VOICE}/inbound", params, signature="")).status == 403
    # A valid signature for other parameters does not carry over.
    good = twilio.validator.compute_signature(twilio.base + f"{VOICE}/inbound", params)
    tampered = {**params, "From": "+12025550199"}
    assert (await twilio.post(f"{VOICE}/inbound", tampered, signature=good)).status == 403
    assert await voice_rows(uow_factory) == []
    async with uow_factory() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_unknown_caller_becomes_a_customer(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(client, staff.blue_1)
    ws = await agent_socket(client, staff.blue_1.login)
    await twilio.incoming(call_sid(), caller="+442079460958")
    pop = await next_of(ws, "call.screen_pop")
    assert pop["card"]["phones"] == ["+442079460958"]
    assert pop["card"]["owner"] is None
    await ws.close()


async def test_the_owner_gets_their_customer_call(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory, owner_id=staff.red_2.id)
    await available(client, staff.red_1)
    await available(client, staff.red_2)
    assert dialed_identity(await twilio.incoming(call_sid())) == f"agent-{staff.red_2.id}"


async def test_simultaneous_calls_never_share_an_agent(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff
) -> None:
    await available(client, staff.red_1, staff.red_2, staff.blue_1)
    callers = [f"+1202555{n:04d}" for n in range(171, 176)]
    answers = await asyncio.gather(*(twilio.incoming(call_sid(), caller=c) for c in callers))
    dialed = [dialed_identity(t) for t in answers]
    routed = [d for d in dialed if d is not None]
    assert len(routed) == 3 and len(set(routed)) == 3
    assert sum(1 for t in answers if t.find("./Enqueue") is not None) == 2


async def test_busy_agents_queue_the_caller_and_a_missed_call_opens_one_callback_ticket(
    twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await known_customer(uow_factory)
    first, second = call_sid(), call_sid()
    twiml = await twilio.incoming(first)
    enqueue = twiml.find("./Enqueue")
    assert enqueue is not None and enqueue.get("waitUrl", "").endswith("/queue-wait")
    wait = await twilio.twiml(
        f"{VOICE}/queue-wait", {"CallSid": first, "QueuePosition": "2", "QueueTime": "30"}
    )
    assert "number 2" in "".join(wait.itertext())
    await twilio.status(first, "completed", 3, CallDuration="40")
    await twilio.incoming(second)
    await twilio.status(second, "completed", 2, CallDuration="5")
    async with uow_factory() as uow:
        tickets = list(await uow.session.scalars(select(Ticket).where(Ticket.customer_id == customer_id)))
        assert [(t.category, t.source_channel) for t in tickets] == [("callback", Channel.VOICE)]
        notes = list(
            await uow.session.scalars(select(TicketComment).where(TicketComment.ticket_id == tickets[0].id))
        )
        assert len(notes) == 2 and all("Missed call" in n.body for n in notes)
    rows = await voice_rows(uow_factory)
    assert {r.ticket_id for r in rows} == {tickets[0].id}


async def test_an_inbound_call_that_ended_before_it_was_logged_is_called_back(
    twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    customer_id = await known_customer(uow_factory)
    missed, outbound, early = call_sid(), call_sid(), call_sid()
    inbound = {"Direction": "inbound", "From": CALLER, "To": "+15005550006"}
    # The inbound webhook failed (say, the database was down): only the final status arrives.
    await twilio.status(missed, "no-answer", 4, CallDuration="0", **inbound)
    await twilio.status(missed, "no-answer", 4, CallDuration="0", **inbound)  # delivered twice
    await twilio.status(early, "ringing", 1, **inbound)  # not over: the webhook may yet come
    await twilio.status(outbound, "completed", 3, Direction="outbound-api", From="+15005550006", To=CALLER)
    [row] = await voice_rows(uow_factory)
    assert (row.external_id, row.customer_id, row.status) == (missed, customer_id, "no-answer")
    assert row.missed is True and row.meta["unrouted"] is True and row.ended_at is not None
    async with uow_factory() as uow:
        [ticket] = list(await uow.session.scalars(select(Ticket).where(Ticket.customer_id == customer_id)))
    assert (ticket.category, row.ticket_id) == ("callback", ticket.id)
    # Its webhook arriving late answers from the row: nobody is routed to a call that is over.
    assert (await twilio.incoming(missed)).find("./Hangup") is not None
    assert len(await voice_rows(uow_factory)) == 1


async def test_status_callbacks_twice_and_out_of_order_end_in_the_final_state(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    await available(client, staff.red_1)
    sid = call_sid()
    await twilio.incoming(sid)
    await twilio.agent_answers(sid, staff.red_1.id)
    await twilio.agent_answers(sid, staff.red_1.id)
    assert (await client.app[RUNTIME].presence.get(staff.red_1.id)).state is AgentState.ON_CALL
    await twilio.status(sid, "completed", 3, CallDuration="95")
    await twilio.status(sid, "in-progress", 2)
    await twilio.status(sid, "ringing", 1)
    await twilio.status(sid, "completed", 3, CallDuration="95")
    [row] = await voice_rows(uow_factory)
    assert (row.status, row.duration_seconds, row.agent_id) == ("completed", 95, staff.red_1.id)
    assert row.ticket_id is None  # answered: no callback ticket
    resp = await twilio.post(
        f"{VOICE}/dial-action?agent={staff.red_1.id}",
        {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "90"},
    )
    assert resp.status == 200
    presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
    assert presence.state is AgentState.WRAP_UP and presence.until is not None


async def test_an_answered_call_shows_its_routing_in_the_api(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    await available(client, staff.red_1)
    sid = call_sid()
    await twilio.incoming(sid)
    await twilio.agent_answers(sid, staff.red_1.id)
    await twilio.status(sid, "completed", 3, CallDuration="40")
    [row] = await voice_rows(uow_factory)
    agent = await signed_in(client, staff.red_1)
    shown = await (await agent.get(f"/api/v1/interactions/{row.id}")).json()
    assert (shown["call_decision"], shown["routed_agent_id"], shown["answered_by_id"], shown["missed"]) == (
        "connect-agent",
        staff.red_1.id,
        staff.red_1.id,
        False,
    )
    assert shown["answered_at"] is not None and shown["queued_at"] is None  # rang the agent at once


async def test_unanswered_offer_moves_on_and_sets_the_agent_away(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(client, staff.red_1)
    sid = call_sid()
    assert dialed_identity(await twilio.incoming(sid)) == f"agent-{staff.red_1.id}"
    await available(client, staff.blue_1)
    twiml = await twilio.twiml(
        f"{VOICE}/dial-action?agent={staff.red_1.id}", {"CallSid": sid, "DialCallStatus": "no-answer"}
    )
    assert dialed_identity(twiml) == f"agent-{staff.blue_1.id}"
    assert (await client.app[RUNTIME].presence.get(staff.red_1.id)).state is AgentState.AWAY


async def test_a_caller_hanging_up_while_the_agent_rings_leaves_the_agent_available(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(client, staff.red_1)
    sid = call_sid()
    assert dialed_identity(await twilio.incoming(sid)) == f"agent-{staff.red_1.id}"
    await available(client, staff.blue_1)
    twiml = await twilio.twiml(
        f"{VOICE}/dial-action?agent={staff.red_1.id}",
        {"CallSid": sid, "DialCallStatus": "canceled", "CallStatus": "completed"},
    )
    assert dialed_identity(twiml) is None  # nobody left to route the call to
    states = await client.app[RUNTIME].presence.get_many([staff.red_1.id, staff.blue_1.id])
    assert [states[a.id].state for a in (staff.red_1, staff.blue_1)] == [AgentState.AVAILABLE] * 2


async def test_a_retried_inbound_webhook_routes_nobody_twice(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(client, staff.red_1, staff.red_2)
    sid = call_sid()
    first = await twilio.incoming(sid)
    again = await twilio.incoming(sid)
    assert dialed_identity(first) == dialed_identity(again)
    assert len(await voice_rows(uow_factory)) == 1
    states = await client.app[RUNTIME].presence.get_many([staff.red_1.id, staff.red_2.id])
    assert sorted(p.state.value for p in states.values()) == ["available", "ringing"]


async def test_a_reconnecting_agent_gets_the_card_of_a_call_still_ringing(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    await available(client, staff.red_1)
    sid = call_sid()
    await twilio.incoming(sid)
    ws = await agent_socket(client, staff.red_1.login)
    pop = await next_of(ws, "call.screen_pop")
    assert (pop["call_sid"], pop["replayed"]) == (sid, True)
    await ws.close()


async def test_agent_socket_needs_a_session_and_our_origin(
    client: TestClient[Any, Any], staff: Staff
) -> None:
    resp = await client.get("/ws/agent")
    assert resp.status == 401
    cookie = (await signed_in(client, staff.red_1)).cookie
    resp = await client.get(
        "/ws/agent",
        headers={
            "Cookie": f"cc_session={cookie}",
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert resp.status == 403


@pytest_asyncio.fixture(loop_scope="session")
async def closed_client(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> AsyncIterator[TestClient[Any, Any]]:
    closed = {
        day: "" for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    }
    app = create_app(
        isolated_settings(settings).with_overrides(
            voice={"hours": {"timezone": "UTC", "holidays": [], **closed}}
        )
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_after_hours_voicemail_opens_a_ticket_with_the_recording(
    closed_client: TestClient[Any, Any], settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    twilio = Twilio(closed_client, settings)
    customer_id = await known_customer(uow_factory)
    await available(closed_client, staff.red_1)
    sid = call_sid()
    twiml = await twilio.incoming(sid)
    record = twiml.find("./Record")
    assert record is not None and dialed_identity(twiml) is None
    recording = {
        "CallSid": sid,
        "RecordingUrl": "https://api.twilio.com/rec/RE1",
        "RecordingSid": "RE1",
        "RecordingDuration": "12",
    }
    await twilio.twiml(f"{VOICE}/voicemail", recording)
    await twilio.twiml(f"{VOICE}/recording-status", {**recording, "RecordingStatus": "completed"})
    await twilio.status(sid, "completed", 2, CallDuration="20")
    async with uow_factory() as uow:
        [ticket] = list(await uow.session.scalars(select(Ticket).where(Ticket.customer_id == customer_id)))
        assert ticket.category == "voicemail"
        notes = list(
            await uow.session.scalars(select(TicketComment).where(TicketComment.ticket_id == ticket.id))
        )
        assert [n.body for n in notes] == ["Voicemail recording: https://api.twilio.com/rec/RE1"]
    [row] = await voice_rows(uow_factory)
    assert row.ticket_id == ticket.id and row.meta["recording_url"].endswith("RE1")
    assert (await closed_client.app[RUNTIME].presence.get(staff.red_1.id)).state is AgentState.AVAILABLE


@pytest.mark.needs_redis
async def test_pop_reaches_the_agent_on_another_instance(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    shared = isolated_settings(settings)
    async with (
        TestClient(TestServer(create_app(shared))) as one,
        TestClient(TestServer(create_app(shared))) as two,
    ):
        await known_customer(uow_factory)
        await available(one, staff.blue_1)
        ws = await agent_socket(two, staff.blue_1.login)
        sid = call_sid()
        await Twilio(one, settings).incoming(sid)
        pop = await next_of(ws, "call.screen_pop")
        assert pop["call_sid"] == sid and pop["card"]["display_name"] == "Ada Lovelace"
        # Announced by the presence step itself (with Redis: from its script), still through the bus.
        twilio_one = Twilio(one, settings)
        await twilio_one.agent_answers(sid, staff.blue_1.id)
        answered = await next_of(ws, "call.updated")
        assert (answered["call_sid"], answered["state"]) == (sid, "answered")
        assert (await next_of(ws, "presence.changed"))["state"] == "on-call"
        await twilio_one.twiml(
            f"{VOICE}/dial-action?agent={staff.blue_1.id}", {"CallSid": sid, "DialCallStatus": "completed"}
        )
        wrap = await next_of(ws, "presence.changed")
        assert (wrap["state"], wrap["call_sid"]) == ("wrap-up", sid)
        await nothing_of(ws, "presence.changed")  # announced once
        await ws.close()


async def test_a_freed_agent_gets_the_longest_waiting_caller(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    async with with_rest_double(settings) as (client, twilio, rest):
        await known_customer(uow_factory)
        first, second = call_sid(), call_sid()
        assert (await twilio.incoming(first)).find("./Enqueue") is not None
        assert (await twilio.incoming(second, caller="+12025550144")).find("./Enqueue") is not None
        ws = await agent_socket(client, staff.red_1.login)
        agent = await signed_in(client, staff.red_1)
        resp = await agent.put("/api/v1/presence/me", json={"state": "available"})
        assert resp.status == 200
        pop = await next_of(ws, "call.screen_pop")
        assert pop["call_sid"] == first  # the longest waiting
        async with asyncio.timeout(5):
            while not rest.updates:
                await asyncio.sleep(0.02)
        [(sid, form)] = rest.updates
        assert sid == first and form["Url"].endswith(f"/twilio/voice/connect?agent={staff.red_1.id}")
        twiml = await twilio.twiml(
            f"/twilio/voice/connect?agent={staff.red_1.id}",
            {"CallSid": first, "From": CALLER, "To": "+15005550006"},
        )
        assert dialed_identity(twiml) == f"agent-{staff.red_1.id}"
        rows = {r.external_id: r for r in await voice_rows(uow_factory)}
        assert (rows[first].status, rows[first].agent_id) == ("offering", staff.red_1.id)
        assert rows[second].status == "queued-for-agent"
        await ws.close()


async def test_the_longest_waiting_caller_is_offered_as_the_wrap_up_ends(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    voice = {"wrap_up_seconds": 0.3, "queue_poll_seconds": 60}  # the queue's timer will not help
    async with with_rest_double(settings, voice=voice) as (client, twilio, rest):
        await known_customer(uow_factory)
        await available(client, staff.red_1)
        talking, waiting = call_sid(), call_sid()
        assert dialed_identity(await twilio.incoming(talking)) == f"agent-{staff.red_1.id}"
        await twilio.agent_answers(talking, staff.red_1.id)
        assert (await twilio.incoming(waiting, caller="+12025550144")).find("./Enqueue") is not None
        resp = await twilio.post(
            f"{VOICE}/dial-action?agent={staff.red_1.id}",
            {"CallSid": talking, "DialCallStatus": "completed"},
        )
        assert resp.status == 200
        wrap_up = await client.app[RUNTIME].presence.get(staff.red_1.id)
        assert wrap_up.state is AgentState.WRAP_UP and wrap_up.until is not None
        await until(lambda: rest.updates, what="the waiting caller is offered")
        [(sid, form)] = rest.updates
        assert sid == waiting and form["Url"].endswith(f"/twilio/voice/connect?agent={staff.red_1.id}")
        assert rest.updated_at[0] >= wrap_up.until  # not during the wrap-up


async def test_live_calls_queue_and_call_outcome(
    client: TestClient[Any, Any],
    twilio: Twilio,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
    sign_in: SignIn,
) -> None:
    await known_customer(uow_factory, owner_id=staff.red_1.id)
    await available(client, staff.red_1)
    talking, waiting = call_sid(), call_sid()
    await twilio.incoming(talking)
    await twilio.agent_answers(talking, staff.red_1.id)
    await twilio.incoming(waiting, caller="+12025550144")

    lead = await sign_in(staff.red_lead)
    board = await (await lead.get("/api/v1/calls/live")).json()
    assert [(c["call_sid"], c["status"], c["queue_position"]) for c in board["items"]] == [
        (talking, "ringing", None),
        (waiting, "queued-for-agent", 1),
    ]
    assert board["queued"] == 1
    red_1 = await sign_in(staff.red_1)
    mine = await (await red_1.get("/api/v1/calls/live")).json()
    assert [c["call_sid"] for c in mine["items"]] == [talking]

    await twilio.status(talking, "completed", 3, CallDuration="60")
    assert [c["call_sid"] for c in (await (await lead.get("/api/v1/calls/live")).json())["items"]] == [
        waiting
    ]
    [row] = [r for r in await voice_rows(uow_factory) if r.external_id == talking]
    resp = await red_1.post(
        f"/api/v1/calls/{row.id}/outcome", json={"disposition": "resolved", "note": " Fixed the invoice "}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["summary"] == "Fixed the invoice" and body["metadata"]["disposition"] == "resolved"
    bad = await red_1.post(f"/api/v1/calls/{row.id}/outcome", json={"disposition": "made-up"})
    assert bad.status == 422 and "disposition" in (await bad.json())["error"]["fields"]
    red_2 = await sign_in(staff.red_2)
    assert (await red_2.post(f"/api/v1/calls/{row.id}/outcome", json={"disposition": "resolved"})).status in (
        403,
        404,
    )
    again = await lead.post(f"/api/v1/calls/{row.id}/outcome", json={"disposition": "escalated"})
    assert (await again.json())["metadata"]["outcome_history"] == [
        {"disposition": "resolved", "disposition_by": staff.red_1.id}
    ]


async def test_an_agent_with_a_phone_number_is_rung_there(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, sign_in: SignIn
) -> None:
    admin = await sign_in(staff.admin)
    resp = await admin.patch(f"/api/v1/agents/{staff.red_1.id}", json={"phone": "(202) 555-0190"})
    assert resp.status == 200 and (await resp.json())["phone"] == "+12025550190"
    bad = await admin.patch(f"/api/v1/agents/{staff.red_1.id}", json={"phone": "12"})
    assert bad.status == 422
    await available(client, staff.red_1)
    twiml = await twilio.incoming(call_sid())
    number = twiml.find("./Dial/Number")
    assert number is not None and (number.text or "").strip() == "+12025550190"
    assert number.get("statusCallback", "").endswith(f"/agent-leg?agent={staff.red_1.id}")
    assert twiml.find("./Dial/Client") is None


class RedirectWithLostAnswer:
    """Twilio applies the redirect (it fetches the connect URL at once) but its answer to the REST
    request is lost: the gateway reports that it does not know what happened."""

    def __init__(self, twilio: Twilio) -> None:
        self.twilio = twilio
        self.redirects: list[tuple[str, str]] = []

    async def redirect_call(self, call_sid: str, url: str) -> None:
        self.redirects.append((call_sid, url))
        path = url.removeprefix(self.twilio.base)
        await self.twilio.twiml(path, {"CallSid": call_sid, "From": CALLER, "To": "+15005550006"})
        raise GatewayError("call redirect: no answer from Twilio (TimeoutError)")

    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str:
        raise AssertionError("not used")


async def test_a_call_answered_after_a_lost_redirect_answer_leaves_the_queue(
    client: TestClient[Any, Any],
    twilio: Twilio,
    staff: Staff,
    uow_factory: UnitOfWorkFactory,
    sign_in: SignIn,
) -> None:
    await known_customer(uow_factory)
    sid = call_sid()
    assert (await twilio.incoming(sid)).find("./Enqueue") is not None
    desk = client.app[CALL_DESK].get()
    control = RedirectWithLostAnswer(twilio)
    desk._queue._control = control
    await available(client, staff.red_1)

    await desk.connect_waiting_callers()
    # The redirect landed: the agent's phone rings for this caller, whatever the REST answer said.
    assert [s for s, _ in control.redirects] == [sid]
    presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
    assert (presence.state, presence.call_sid) == (AgentState.RINGING, sid)
    await desk.connect_waiting_callers()
    assert len(control.redirects) == 1  # not offered twice

    await twilio.agent_answers(sid, staff.red_1.id)
    [row] = await voice_rows(uow_factory)
    assert (row.status, row.agent_id) == ("in-progress", staff.red_1.id)
    lead = await sign_in(staff.red_lead)
    board = await (await lead.get("/api/v1/calls/live")).json()
    assert board["queued"] == 0
    assert [(c["call_sid"], c["queue_position"]) for c in board["items"]] == [(sid, None)]

    leg = {"CallSid": "CA" + "f" * 32, "ParentCallSid": sid, "CallStatus": "completed"}
    assert (await twilio.post(f"{VOICE}/agent-leg?agent={staff.red_1.id}", leg)).status == 200
    await twilio.twiml(
        f"{VOICE}/dial-action?agent={staff.red_1.id}", {"CallSid": sid, "DialCallStatus": "completed"}
    )
    await twilio.status(sid, "completed", 4, CallDuration="30")
    [row] = await voice_rows(uow_factory)
    assert (row.status, row.agent_id, row.ticket_id) == ("completed", staff.red_1.id, None)
    assert (await (await lead.get("/api/v1/calls/live")).json())["items"] == []


async def test_an_unconfirmed_redirect_that_never_landed_is_taken_back_while_the_caller_waits(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    sid = call_sid()
    await twilio.incoming(sid)
    desk = client.app[CALL_DESK].get()

    class Lost(RedirectWithLostAnswer):
        async def redirect_call(self, call_sid: str, url: str) -> None:
            self.redirects.append((call_sid, url))
            raise GatewayError("call redirect: no answer from Twilio (TimeoutError)")

    desk._queue._control = Lost(twilio)
    await available(client, staff.red_1)
    await desk.connect_waiting_callers()
    wait = {"CallSid": sid, "QueuePosition": "1", "QueueTime": "30"}
    await twilio.twiml(f"{VOICE}/queue-wait", wait)
    [row] = await voice_rows(uow_factory)
    assert row.status == "offering"  # within a ring: the redirect may still land
    async with uow_factory() as uow:
        stored = await uow.session.get_one(Interaction, row.id)
        stored.offered_at = datetime(2000, 1, 1, tzinfo=UTC)
        await uow.commit()
    again = FakeTwilioRedirects()
    desk._queue._control = again
    await twilio.twiml(f"{VOICE}/queue-wait", wait)  # still in Twilio's queue long after the offer
    await desk.connect_waiting_callers()
    # The stale offer was taken back (agent released, caller queued) and the caller offered afresh.
    assert again.redirects == [sid]
    [row] = await voice_rows(uow_factory)
    assert (row.status, row.agent_id) == ("offering", staff.red_1.id)
    assert row.offered_at is not None and row.offered_at.year > 2001


class FakeTwilioRedirects:
    def __init__(self) -> None:
        self.redirects: list[str] = []

    async def redirect_call(self, call_sid: str, url: str) -> None:
        self.redirects.append(call_sid)

    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str:
        raise AssertionError("not used")


class RefusingRedirects(FakeTwilioRedirects):
    """Twilio answers the redirect of one caller with a definite refusal (HTTP 400)."""

    def __init__(self, refused: str | None) -> None:
        super().__init__()
        self.refused = refused

    async def redirect_call(self, call_sid: str, url: str) -> None:
        self.redirects.append(call_sid)
        if call_sid == self.refused:
            raise GatewayError("call redirect: HTTP 400 (call is not in progress)", status=400)


async def test_a_caller_whose_redirect_is_refused_is_not_offered_again_at_once(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    first, second = call_sid(), call_sid()
    await twilio.incoming(first)
    await twilio.incoming(second)
    desk = client.app[CALL_DESK].get()
    control = RefusingRedirects(refused=first)
    desk._queue._control = control
    await available(client, staff.red_1)

    assert await desk.connect_waiting_callers() == 0
    assert control.redirects[0] == first
    # The release announced the agent available, which runs the queue again (here too, should the
    # announcement not have done so yet): the refused caller is skipped for a while (no redirect
    # loop), the next one in line gets the agent.
    await desk.connect_waiting_callers()  # queue runs take turns: any run started before is over
    assert control.redirects == [first, second]
    await available(client, staff.red_2)
    assert await desk.connect_waiting_callers() == 0
    assert control.redirects == [first, second]
    rows = {row.external_id: row for row in await voice_rows(uow_factory)}
    assert (rows[first].status, rows[first].agent_id) == ("queued-for-agent", None)
    assert (rows[second].status, rows[second].agent_id) == ("offering", staff.red_1.id)

    desk._queue.failed_offers.forget(first)  # the backoff has passed
    control.refused = None
    assert await desk.connect_waiting_callers() == 1
    assert control.redirects == [first, second, first]
    [row] = [row for row in await voice_rows(uow_factory) if row.external_id == first]
    assert (row.status, row.agent_id) == ("offering", staff.red_2.id)


async def agent_leg(twilio: Twilio, parent: str, agent_id: int, status: str, sequence: int) -> None:
    """A status callback of the agent's leg of ``parent`` (the Dial noun's statusCallback)."""
    params = {
        "CallSid": "CA" + "e" * 32,
        "ParentCallSid": parent,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
    }
    resp = await twilio.post(f"{VOICE}/agent-leg?agent={agent_id}", params)
    assert resp.status == 200, await resp.text()


async def test_an_agent_leg_that_ends_before_its_answer_arrives_frees_the_agent(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    async with with_rest_double(settings, voice={"wrap_up_seconds": 0.2}) as (client, twilio, _):
        presence = client.app[RUNTIME].presence
        agent = staff.red_1.id
        await available(client, staff.red_1)
        first = call_sid()
        assert dialed_identity(await twilio.incoming(first)) == f"agent-{agent}"
        await agent_leg(twilio, first, agent, "completed", 3)  # the end first...
        await agent_leg(twilio, first, agent, "in-progress", 2)  # ...then the answer
        now = await presence.get(agent)
        assert (now.state, now.call_sid) == (AgentState.WRAP_UP, first)
        [row] = await voice_rows(uow_factory)
        assert row.answered_by_id == agent  # who took the call is still recorded

        # No dial action comes: once the wrap-up is over the agent takes the next call...
        async with asyncio.timeout(5):
            while (await presence.get(agent)).state is not AgentState.AVAILABLE:
                await asyncio.sleep(0.02)
        second = call_sid()
        assert dialed_identity(await twilio.incoming(second, caller="+12025550144")) == f"agent-{agent}"
        # ...and a yet later answer of the first call does not take them off the second.
        await agent_leg(twilio, first, agent, "in-progress", 2)
        now = await presence.get(agent)
        assert (now.state, now.call_sid) == (AgentState.RINGING, second)


async def test_the_end_of_the_call_frees_its_agent_when_the_leg_end_and_dial_action_are_lost(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await available(client, staff.red_1)
    sid = call_sid()
    await twilio.incoming(sid)
    await twilio.agent_answers(sid, staff.red_1.id)
    assert (await client.app[RUNTIME].presence.get(staff.red_1.id)).state is AgentState.ON_CALL
    await twilio.status(sid, "completed", 5, CallDuration="30")
    presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
    assert (presence.state, presence.call_sid) == (AgentState.WRAP_UP, sid)
