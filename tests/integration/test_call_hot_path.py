"""The inbound-call hot path: single statements, kept connections, the agents roster, one-step
wrap-up, a surge of callers while everyone is busy, and duplicate deliveries racing each other."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import select, update

from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState, MemoryPresenceStore, PresenceStore
from contact_center.routing.redis_presence import RedisPresenceStore
from contact_center.routing.roster import RosterCache
from contact_center.settings import Settings
from contact_center.voice import queue as call_queue
from contact_center.voice.wiring import CALL_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import Agent, Interaction, utcnow
from crm_core.services.customers import create_customer
from crm_core.services.inbound_calls import (
    MAX_QUEUED_PER_STATEMENT,
    QueuedCall,
    log_inbound_call,
    log_queued_calls,
    look_up_caller,
    mark_answered,
    stored_call,
)
from crm_core.sql import AutocommitConnections
from tests.conftest import RUN_ID, Staff
from tests.support.agents import available
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


class Ticking:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- statements ----------------------------------------------------------------------------------


async def test_a_call_is_logged_once_by_customer_id_or_by_number(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    customer_id = await known_customer(uow_factory, owner_id=staff.red_1.id)
    connections = AutocommitConnections(uow_factory.engine)
    now = utcnow()
    try:
        async with connections.connect() as conn:
            caller = await look_up_caller(conn, CALLER, "CA-first")
            assert caller is not None
            assert (caller.customer_id, caller.owner_id, caller.logged_id) == (
                customer_id,
                staff.red_1.id,
                None,
            )
            assert await look_up_caller(conn, "+12025550100", "CA-first") is None

            first = await log_inbound_call(
                conn,
                call_sid="CA-first",
                customer=customer_id,
                agent_id=staff.red_1.id,
                status="ringing",
                started_at=now,
                meta={"from": CALLER},
            )
            assert first is not None and first.customer_id == customer_id and first.agent_phone is None
            again = await log_inbound_call(
                conn,
                call_sid="CA-first",
                customer=customer_id,
                agent_id=None,
                status="x",
                started_at=now,
                meta={},
            )
            assert again is None

            caller = await look_up_caller(conn, CALLER, "CA-first")
            assert caller is not None and caller.logged_id == first.interaction_id
            stored = await stored_call(conn, "CA-first")
            assert stored is not None
            assert (stored.status, stored.agent_id, stored.decision, stored.routed_agent_id) == (
                "ringing",
                staff.red_1.id,
                "connect-agent",
                staff.red_1.id,
            )
    finally:
        await connections.close()


async def test_who_answered_is_recorded_once(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    customer_id = await known_customer(uow_factory)
    connections = AutocommitConnections(uow_factory.engine)
    try:
        async with connections.connect() as conn:
            logged = await log_inbound_call(
                conn,
                call_sid="CA-answer",
                customer=customer_id,
                agent_id=staff.red_1.id,
                status="ringing",
                started_at=utcnow(),
                meta={"from": CALLER},
            )
            assert logged is not None
            at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            marked = await mark_answered(conn, "CA-answer", staff.red_2.id, at)
            assert marked == (logged.interaction_id, customer_id, None)
            assert await mark_answered(conn, "CA-answer", staff.red_1.id, at + timedelta(seconds=5)) is None
            assert await mark_answered(conn, "CA-unknown", staff.red_1.id, at) is None
            stored = await stored_call(conn, "CA-answer")
            assert stored is not None and stored.agent_id == staff.red_2.id
            assert (stored.routed_agent_id, stored.answered_at) == (staff.red_1.id, at)
            row = await conn.execute(
                select(Interaction.answered_by_id, Interaction.meta).where(
                    Interaction.id == logged.interaction_id
                )
            )
            assert tuple(row.one()) == (staff.red_2.id, {"from": CALLER})
    finally:
        await connections.close()


# --- kept connections and the roster -------------------------------------------------------------


async def test_connections_are_kept_while_fresh_and_dropped_after_an_error(
    uow_factory: UnitOfWorkFactory,
) -> None:
    clock = Ticking()
    connections = AutocommitConnections(uow_factory.engine, size=1, fresh_seconds=5, clock=clock)
    try:
        async with connections.connect() as first:
            pass
        clock.now += 4
        async with connections.connect() as again:
            assert again is first
        clock.now += 6  # idle for too long: back to the pool, a checked one next time
        async with connections.connect() as later:
            assert later is not first
        with pytest.raises(ZeroDivisionError):
            async with connections.connect() as failing:
                assert failing is later
                raise ZeroDivisionError
        async with connections.connect() as fresh:
            assert fresh is not later

        # size=1: a second user waits for the first one to finish.
        order: list[str] = []

        async def use(name: str) -> None:
            async with connections.connect():
                order.append(f"{name} in")
                await asyncio.sleep(0.02)
                order.append(f"{name} out")

        await asyncio.gather(use("a"), use("b"))
        assert order == ["a in", "a out", "b in", "b out"]
    finally:
        await connections.close()


async def test_the_roster_is_read_again_after_its_time(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    clock = Ticking()
    roster = RosterCache(uow_factory.engine, ttl=5, clock=clock)
    assert staff.red_1.id in (await roster.get()).agent_ids
    async with uow_factory() as uow:
        await uow.session.execute(update(Agent).where(Agent.id == staff.red_1.id).values(active=False))
        await uow.commit()
    clock.now += 4
    assert staff.red_1.id in (await roster.get()).agent_ids
    clock.now += 2
    current = await roster.get()
    assert staff.red_1.id not in current.agent_ids and not current.is_active(staff.red_1.id)
    async with uow_factory() as uow:
        await uow.session.execute(update(Agent).where(Agent.id == staff.red_1.id).values(active=True))
        await uow.commit()
    roster.invalidate()
    assert staff.red_1.id in (await roster.get()).agent_ids


# --- wrap-up in one step -------------------------------------------------------------------------


@pytest_asyncio.fixture(
    loop_scope="session", params=["memory", pytest.param("redis", marks=pytest.mark.needs_redis)]
)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    if request.param == "memory":
        yield MemoryPresenceStore()
        return
    url = os.environ["REDIS_URL"]
    redis = Redis.from_url(url)
    prefix = f"cc-test-{RUN_ID}:{secrets.token_hex(3)}:"
    try:
        yield RedisPresenceStore(redis, prefix)
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_wrap_up_applies_only_to_the_agents_current_call(presence: PresenceStore) -> None:
    assert await presence.wrap_up(1, "CA1", 30) is None  # offline
    await presence.set(1, AgentState.AVAILABLE)
    assert await presence.claim(preferred=None, eligible=[1], call_sid="CA1") == 1
    assert await presence.wrap_up(1, "CA2", 30) is None  # another call
    ringing = await presence.wrap_up(1, "CA1", 30)
    assert ringing is not None and ringing.was is AgentState.RINGING
    assert ringing.presence.state is AgentState.WRAP_UP and ringing.presence.until is not None
    assert await presence.get(1) == ringing.presence
    assert await presence.wrap_up(1, "CA1", 30) is None  # already wrapping up

    await presence.set(1, AgentState.ON_CALL, call_sid="CA3")
    on_call = await presence.wrap_up(1, "CA3", 0)
    assert on_call is not None and on_call.was is AgentState.ON_CALL
    assert (await presence.get(1)).state is AgentState.AVAILABLE  # a zero wrap-up is over at once


async def test_an_answer_applies_only_while_the_agent_rings_for_that_call(presence: PresenceStore) -> None:
    published: list[str] = []

    async def announce(events: Sequence[DomainEvent]) -> None:
        published.extend(f"{e.name}:{e.payload.get('state', '')}" for e in events)

    answered = DomainEvent("call.updated", {"state": "answered"})
    await presence.set(1, AgentState.AVAILABLE)
    assert await presence.claim(preferred=None, eligible=[1], call_sid="CA1") == 1
    assert await presence.answer(1, "CA2", announce=announce) is None  # another call
    on_call = await presence.answer(1, "CA1", announce=announce, with_events=[answered])
    assert on_call is not None and on_call.state is AgentState.ON_CALL and on_call.call_sid == "CA1"
    assert await presence.get(1) == on_call
    assert await presence.wrap_up(1, "CA1", 30) is not None
    # A late answer after the end: recorded by the caller, the agent stays in wrap-up.
    assert await presence.answer(1, "CA1", announce=announce, with_events=[answered]) is None
    assert (await presence.get(1)).state is AgentState.WRAP_UP
    assert published == ["call.updated:answered", "presence.changed:on-call", "call.updated:answered"]


async def test_queued_calls_arriving_together_are_logged_in_one_statement(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    customer_id = await known_customer(uow_factory, owner_id=staff.red_1.id)
    async with uow_factory() as uow:
        other = await create_customer(uow, None, region="US", display_name="Grace", phones=["+12025550144"])
        await uow.commit()
    other_id = other.id
    connections = AutocommitConnections(uow_factory.engine)
    now = utcnow()

    def queued(sid: str, phone: str = CALLER, seconds: int = 0) -> QueuedCall:
        return QueuedCall(sid, phone, now + timedelta(seconds=seconds), {"n": sid})

    try:
        async with connections.connect() as conn:
            calls = [
                queued("CA-q1"),
                queued("CA-q2", "+12025550100"),  # not on file
                queued("CA-q3", "+12025550144", 1),
                queued("CA-q1", seconds=2),  # the same call twice in one group: logged once
                queued("CA-q4", seconds=3),
            ]
            logged = await log_queued_calls(conn, calls, "queued-for-agent")
            assert [None if c is None else c.customer_id for c in logged] == [
                customer_id,
                None,
                other_id,
                None,
                customer_id,
            ]
            first, _, third, _, fifth = logged
            assert first is not None and third is not None and fifth is not None
            # Rows are numbered in the order the callers came, whatever order the join takes.
            assert first.interaction_id < third.interaction_id < fifth.interaction_id
            # Already logged, even alone: nothing is written twice.
            assert await log_queued_calls(conn, [queued("CA-q3")], "queued-for-agent") == [None]
            with pytest.raises(ValueError, match="at most"):
                await log_queued_calls(
                    conn, [queued(f"CA-many-{i}") for i in range(MAX_QUEUED_PER_STATEMENT + 1)], "x"
                )
    finally:
        await connections.close()
    rows = {r.external_id: r for r in await voice_rows(uow_factory)}
    assert sorted(str(sid) for sid in rows) == ["CA-q1", "CA-q3", "CA-q4"]
    assert rows["CA-q1"].meta == {"n": "CA-q1"} and rows["CA-q1"].started_at == now  # the first wins
    assert {(r.status, r.agent_id, r.channel.value, r.direction.value) for r in rows.values()} == {
        ("queued-for-agent", None, "voice", "inbound")
    }


# --- the call desk -------------------------------------------------------------------------------


async def test_a_surge_while_everyone_is_busy_queues_callers_and_routing_resumes(
    settings: Settings, staff: Staff, uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = {"queue_poll_seconds": 60}  # no help from the queue's timer
    async with with_rest_double(settings, voice=voice) as (client, twilio, rest):
        customer_id = await known_customer(uow_factory, owner_id=staff.red_1.id)
        sids = [call_sid() for _ in range(3)]
        for sid in sids:
            assert (await twilio.incoming(sid)).find("./Enqueue") is not None
        rows = {r.external_id: r for r in await voice_rows(uow_factory)}
        for sid in sids:
            row = rows[sid]
            assert (row.status, row.customer_id, row.agent_id) == ("queued-for-agent", customer_id, None)
            assert row.call_decision == "enqueue" and row.meta["from"] == CALLER
            assert row.queued_at is not None
        # An unknown caller during the surge still becomes a customer.
        unknown = call_sid()
        assert (await twilio.incoming(unknown, caller="+442079460958")).find("./Enqueue") is not None

        presence = client.app[RUNTIME].presence
        await available(client, staff.red_2, staff.red_1)  # without a word, as wrap-ups end
        # Right after a claim found nobody free, callers join the queue behind those waiting.
        late = call_sid()
        assert (await twilio.incoming(late)).find("./Enqueue") is not None
        assert (await presence.get(staff.red_1.id)).state is AgentState.AVAILABLE
        assert rest.updates == []
        # Later, the next caller asks who is free: someone is, so the queue is run at once and
        # the agents who freed up are offered the longest-waiting callers (the first to their own
        # agent); the caller joins the queue behind them.
        monkeypatch.setattr(call_queue, "NOBODY_FREE_HINT_SECONDS", 0.0)
        latest = call_sid()
        assert (await twilio.incoming(latest)).find("./Enqueue") is not None
        async with asyncio.timeout(5):
            while len(rest.updates) < 2:
                await asyncio.sleep(0.02)
        assert [sid for sid, _ in rest.updates] == sids[:2]
        assert rest.updates[0][1]["Url"].endswith(f"/connect?agent={staff.red_1.id}")
        assert rest.updates[1][1]["Url"].endswith(f"/connect?agent={staff.red_2.id}")

        # Everyone still waiting hangs up; both agents free up again, without a word.
        for sid in (sids[2], unknown, late, latest):
            await twilio.status(sid, "completed", 3, CallDuration="30")
        await available(client, staff.red_1, staff.red_2)
        # The first caller to find them free still goes through the queue, which is run at once
        # and finds them alone in it...
        first_back = call_sid()
        assert (await twilio.incoming(first_back)).find("./Enqueue") is not None
        await client.app[CALL_DESK].get().connect_waiting_callers()  # after the run it started
        assert rest.updates[2][0] == first_back
        assert rest.updates[2][1]["Url"].endswith(f"/connect?agent={staff.red_1.id}")
        # ...and nobody waits any more: routing resumes, the next caller is dialed directly.
        assert dialed_identity(await twilio.incoming(call_sid())) == f"agent-{staff.red_2.id}"
        assert len(rest.updates) == 3


async def test_callers_of_a_surge_are_queued_once_each_in_groups(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    assert (await twilio.incoming(call_sid())).find("./Enqueue") is not None  # nobody is free
    sids = [call_sid() for _ in range(40)]
    # Every call twice (Twilio retrying while the first is in flight), all at once.
    answers = await asyncio.gather(*(twilio.incoming(sid) for sid in [*sids, *sids]))
    assert all(a.find("./Enqueue") is not None for a in answers)
    rows = [r for r in await voice_rows(uow_factory) if r.external_id in sids]
    assert sorted(str(r.external_id) for r in rows) == sorted(sids)
    assert {r.status for r in rows} == {"queued-for-agent"}


async def test_duplicate_deliveries_racing_route_one_agent(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    await available(client, staff.red_1, staff.red_2, staff.blue_1)
    sid = call_sid()
    answers = await asyncio.gather(*(twilio.incoming(sid) for _ in range(3)))
    assert len({dialed_identity(a) for a in answers}) == 1
    assert len(await voice_rows(uow_factory)) == 1
    states = await client.app[RUNTIME].presence.get_many([staff.red_1.id, staff.red_2.id, staff.blue_1.id])
    assert sorted(p.state.value for p in states.values()) == ["available", "available", "ringing"]


async def test_a_lost_agent_leg_callback_is_made_good_by_the_dial_action(
    client: TestClient[Any, Any], twilio: Twilio, staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    await known_customer(uow_factory)
    await available(client, staff.red_1)
    sid = call_sid()
    assert dialed_identity(await twilio.incoming(sid)) == f"agent-{staff.red_1.id}"
    resp = await twilio.post(
        f"{VOICE}/dial-action?agent={staff.red_1.id}",
        {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "30"},
    )
    assert resp.status == 200
    [row] = await voice_rows(uow_factory)
    assert row.agent_id == staff.red_1.id and row.answered_by_id == staff.red_1.id
    presence = await client.app[RUNTIME].presence.get(staff.red_1.id)
    assert presence.state is AgentState.WRAP_UP and presence.call_sid == sid
    await twilio.status(sid, "completed", 3, CallDuration="35")
    [row] = await voice_rows(uow_factory)
    assert row.status == "completed" and row.ticket_id is None  # answered: no callback ticket
