"""Conferences in the sandbox, driven by the official twilio-python client: callers and agents meet
in a room, are held, muted, coached and removed, a dialled customer is bridged into a waiting agent's
room, and every answer matches Twilio's published description (twilio-oai) while the conference's
status callbacks arrive in order, numbered and signed."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from contact_center.sandbox import CallOutcomes
from tests.integration.test_sandbox_oai import Recorder
from tests.support.sandbox_harness import NUMBER, TWIML, Env, Webhook, sandbox_env
from tests.support.waiting import until

ROOM = "Conferences/{Sid}.json"
ROOMS = "Conferences.json"
PEOPLE = "Conferences/{ConferenceSid}/Participants.json"
PERSON = "Conferences/{ConferenceSid}/Participants/{CallSid}.json"
ALL_EVENTS = "start end join leave mute hold modify"
LONG_TALK = CallOutcomes(human=1, machine=0, busy=0, no_answer=0, failed=0, talk_seconds=(900, 900))
# What Twilio sends with every conference status callback, and with those about a participant.
ROOM_PARAMS = {
    "AccountSid",
    "ConferenceSid",
    "FriendlyName",
    "StatusCallbackEvent",
    "SequenceNumber",
    "Timestamp",
}
PARTICIPANT_PARAMS = {"CallSid", "Muted", "Hold", "Coaching", "EndConferenceOnExit", "StartConferenceOnEnter"}


def _conference_twiml(name: str, callback: str, **attrs: str) -> str:
    attributes = {"statusCallback": callback, "statusCallbackEvent": ALL_EVENTS, **attrs}
    extra = "".join(f' {k}="{v}"' for k, v in attributes.items())
    noun = f"<Conference{extra}>{name}</Conference>"
    return TWIML.format(f'<Dial action="/after">{noun}</Dial>')


def _events(hooks: list[Webhook]) -> list[tuple[str, str]]:
    """(event, CallSid or "") in SequenceNumber order, after checking the numbers run 1, 2, 3..."""
    numbers = [int(h.params["SequenceNumber"]) for h in hooks]
    assert numbers == list(range(1, len(hooks) + 1)), numbers  # sent one after the other, in order
    for hook in hooks:
        assert not ROOM_PARAMS - set(hook.params), hook.params
        if hook.params["StatusCallbackEvent"].startswith("participant-"):
            assert not PARTICIPANT_PARAMS - set(hook.params), hook.params
    return [(h.params["StatusCallbackEvent"], h.params.get("CallSid", "")) for h in hooks]


_NOBODY = SimpleNamespace(joined=False)


def _mute(client: Client, sid: str, call_sid: str, muted: bool) -> Any:
    return client.conferences(sid).participants(call_sid).update(muted=muted)


def _room_of(env: Env, name: str) -> Any:
    return next((c for c in env.sandbox.conferences.values() if c.friendly_name == name), None)


async def _answer(env: Env, identity: str) -> str:
    (ringing,) = await env.ringing(identity)
    status, answer = await env.sim("POST", f"clients/{identity}/answer", {"call_sid": ringing["call_sid"]})
    assert status == 200, answer
    return str(answer["call_sid"])


async def test_a_caller_and_an_agent_meet_are_held_muted_coached_and_the_agent_ends_it() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", _conference_twiml("room-1", "/conf", participantLabel="customer"))
        env.fake.answer("/after", TWIML.format("<Say>Thank you</Say>"))
        rest = Recorder(env)
        customer = await env.call({})
        await until(lambda: _room_of(env, "room-1") is not None and _room_of(env, "room-1").present())
        listed = await rest(
            "conferences.list", ROOMS, "get", 200, lambda c: c.conferences.list(friendly_name="room-1")
        )
        (room,) = listed
        assert room.status == "init"  # alone in the room: not started
        sid = str(room.sid)

        def add(c: Client, to: str, **kw: Any) -> Any:
            return c.conferences(sid).participants.create(from_=NUMBER, to=to, **kw)

        created = await rest(
            "participants.create",
            PEOPLE,
            "post",
            201,
            lambda c: add(c, "client:alice", label="agent", end_conference_on_exit=True),
        )
        assert created.status == "queued" and created.label == "agent"
        agent = str(created.call_sid)
        assert await _answer(env, "alice") == agent
        await until(lambda: env.sandbox.conferences[sid].status == "in-progress", what="started")
        started = await rest("conferences.fetch", ROOM, "get", 200, lambda c: c.conferences(sid).fetch())
        assert started.status == "in-progress"
        people = await rest(
            "participants.list", PEOPLE, "get", 200, lambda c: c.conferences(sid).participants.list()
        )
        assert {str(p.call_sid) for p in people} == {customer, agent}
        by_label = await rest(
            "participants.fetch label",
            PERSON,
            "get",
            200,
            lambda c: c.conferences(sid).participants("agent").fetch(),
        )
        assert (
            by_label.call_sid == agent and by_label.status == "connected" and by_label.end_conference_on_exit
        )

        held = await rest(
            "participants.update hold",
            PERSON,
            "post",
            200,
            lambda c: (
                c.conferences(sid).participants(customer).update(hold=True, hold_url="https://example.com/m")
            ),
        )
        assert held.hold is True
        on_hold = await rest(
            "participants.list hold",
            PEOPLE,
            "get",
            200,
            lambda c: c.conferences(sid).participants.list(hold=True),
        )
        assert [str(p.call_sid) for p in on_hold] == [customer]
        for muted in (True, False):
            answer = await rest(
                f"participants.update muted={muted}",
                PERSON,
                "post",
                200,
                functools.partial(_mute, sid=sid, call_sid=agent, muted=muted),
            )
            assert answer.muted is muted

        coach = await rest(
            "participants.create coach",
            PEOPLE,
            "post",
            201,
            lambda c: add(c, "client:bob", label="coach", coaching=True, call_sid_to_coach=agent),
        )
        supervisor = str(coach.call_sid)
        await _answer(env, "bob")
        await until(lambda: env.sandbox.calls[supervisor].status == "in-progress", what="coach answered")
        await until(
            lambda: (env.sandbox.conferences[sid].find(supervisor) or _NOBODY).joined, what="coach joined"
        )
        coaching = await rest(
            "participants.fetch coach",
            PERSON,
            "get",
            200,
            lambda c: c.conferences(sid).participants("coach").fetch(),
        )
        assert coaching.coaching is True and coaching.call_sid_to_coach == agent
        barged = await rest(
            "participants.update coaching",
            PERSON,
            "post",
            200,
            lambda c: c.conferences(sid).participants(supervisor).update(coaching=False),
        )
        assert barged.coaching is False and barged.call_sid_to_coach is None
        removed = await rest(
            "participants.delete",
            PERSON,
            "delete",
            204,
            lambda c: c.conferences(sid).participants("coach").delete(),
        )
        assert removed is True
        await asyncio.wait_for(env.sandbox.calls[supervisor].ended.wait(), 5)  # nothing after its Dial
        assert env.sandbox.calls[supervisor].status == "completed"
        await rest(
            "participants.update unhold",
            PERSON,
            "post",
            200,
            lambda c: c.conferences(sid).participants(customer).update(hold=False),
        )

        await asyncio.to_thread(lambda: rest.client.calls(agent).update(status="completed"))
        await env.settled(customer)
        over = await rest("conferences.fetch over", ROOM, "get", 200, lambda c: c.conferences(sid).fetch())
        assert over.status == "completed"
        assert over.reason_conference_ended == "participant-with-end-conference-on-exit-left"
        assert over.call_sid_ending_conference == agent
        left = await rest(
            "participants.list over", PEOPLE, "get", 200, lambda c: c.conferences(sid).participants.list()
        )
        assert left == []
        (after,) = env.fake.at("/after")
        assert after.params["CallSid"] == customer and after.params["DialCallStatus"] == "answered"
        state = await env.state(customer)
        assert state["status"] == "completed" and any(e["event"] == "say" for e in state["log"])
        await rest(
            "conferences.list done", ROOMS, "get", 200, lambda c: c.conferences.list(status="completed")
        )
        rest.check()

        hooks = await env.fake.wait_for("/conf", 13)
        assert _events(hooks) == [
            ("participant-join", customer),
            ("participant-join", agent),
            ("conference-start", ""),
            ("participant-hold", customer),
            ("participant-mute", agent),
            ("participant-unmute", agent),
            ("participant-join", supervisor),
            ("participant-modify", supervisor),
            ("participant-leave", supervisor),
            ("participant-unhold", customer),
            ("participant-leave", agent),
            ("participant-leave", customer),
            ("conference-end", ""),
        ]
        assert hooks[0].params["ParticipantLabel"] == "customer"
        assert hooks[6].params["Coaching"] == "true" and hooks[6].params["CallSidToCoach"] == agent
        assert hooks[3].params["Hold"] == "true" and hooks[4].params["Muted"] == "true"
        end = hooks[-1].params
        assert end["CallSidEndingConference"] == agent and end["ParticipantLabelEndingConference"] == "agent"
        assert end["ReasonConferenceEnded"] == "participant-with-end-conference-on-exit-left"


async def test_a_dialled_customer_is_bridged_into_the_waiting_agents_room_and_the_api_ends_it() -> None:
    async with sandbox_env(outcomes=LONG_TALK) as env:
        env.fake.answer(
            "/client",
            _conference_twiml(
                "agent-alice", "/agent-conf", startConferenceOnEnter="true", endConferenceOnExit="true"
            ),
        )
        rest = Recorder(env)
        status, placed = await env.sim("POST", "clients/alice/calls", {"to": "agent-alice"})
        assert status == 201, placed
        agent = str(placed["call_sid"])
        await until(lambda: _room_of(env, "agent-alice") is not None, what="the agent's room")
        customer_number = "+14155550142"
        await env.sim("POST", "calls/outcomes", {"to": customer_number, "outcome": "human"})
        dialled = await rest(
            "participants.create by name",
            PEOPLE,
            "post",
            201,
            lambda c: c.conferences("agent-alice").participants.create(
                from_=NUMBER,
                to=customer_number,
                label="customer",
                status_callback=env.fake.url("/customer-status"),
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection="Enable",
            ),
        )
        customer = str(dialled.call_sid)
        room = _room_of(env, "agent-alice")
        assert dialled.conference_sid == room.sid and dialled.status == "queued"
        await until(lambda: room.status == "in-progress", what="the customer joined")
        call = await asyncio.to_thread(lambda: rest.client.calls(customer).fetch())
        assert call.status == "in-progress" and call.answered_by == "human"
        fetched = await rest(
            "participants.fetch",
            PERSON,
            "get",
            200,
            lambda c: c.conferences(room.sid).participants(customer).fetch(),
        )
        assert fetched.status == "connected" and fetched.label == "customer"
        ended = await rest(
            "conferences.update completed",
            ROOM,
            "post",
            200,
            lambda c: c.conferences(room.sid).update(
                status="completed", announce_url="https://example.com/a"
            ),
        )
        assert ended.status == "completed" and ended.reason_conference_ended == "conference-ended-via-api"
        assert ended.call_sid_ending_conference is None
        await env.settled(agent)
        await asyncio.wait_for(env.sandbox.calls[customer].ended.wait(), 5)
        assert env.sandbox.calls[customer].status == "completed"
        rest.check()
        statuses = await env.fake.wait_for("/customer-status", 4)
        assert [h.params["CallStatus"] for h in statuses] == [
            "initiated",
            "ringing",
            "in-progress",
            "completed",
        ]
        hooks = await env.fake.wait_for("/agent-conf", 6)
        assert _events(hooks) == [
            ("participant-join", agent),
            ("participant-join", customer),
            ("conference-start", ""),
            ("participant-leave", agent),
            ("participant-leave", customer),
            ("conference-end", ""),
        ]
        assert hooks[-1].params["ReasonConferenceEnded"] == "conference-ended-via-api"


async def test_kicking_the_participant_that_ends_the_conference_on_exit_ends_it_for_everyone() -> None:
    async with sandbox_env(outcomes=LONG_TALK) as env:
        env.fake.answer("/voice", _conference_twiml("room-2", "/conf"))
        env.fake.answer("/after", TWIML.format("<Hangup/>"))
        rest = Recorder(env)
        customer = await env.call({})
        await until(lambda: _room_of(env, "room-2") is not None, what="room")
        room = _room_of(env, "room-2")
        agent = await rest(
            "participants.create",
            PEOPLE,
            "post",
            201,
            lambda c: c.conferences(room.sid).participants.create(
                from_=NUMBER, to="+14155550143", end_conference_on_exit=True
            ),
        )
        await until(lambda: room.status == "in-progress", what="started")
        await rest(
            "participants.delete",
            PERSON,
            "delete",
            204,
            lambda c: c.conferences(room.sid).participants(agent.call_sid).delete(),
        )
        await env.settled(customer)
        assert (
            room.status == "completed"
            and room.reason_ended == "participant-with-end-conference-on-exit-kicked"
        )
        await asyncio.wait_for(env.sandbox.calls[agent.call_sid].ended.wait(), 5)
        rest.check()
        hooks = await env.fake.wait_for("/conf", 6)
        assert [e for e, _ in _events(hooks)][-3:] == [
            "participant-leave",
            "participant-leave",
            "conference-end",
        ]


async def test_a_participant_that_does_not_answer_is_gone_and_refusals_answer_twilios_error_body() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", _conference_twiml("room-3", "/conf"))
        rest = Recorder(env)
        customer = await env.call({})
        await until(lambda: _room_of(env, "room-3") is not None, what="room")
        room = _room_of(env, "room-3")
        busy = "+14155550144"
        await env.sim("POST", "calls/outcomes", {"to": busy, "outcome": "busy"})
        dialled = await rest(
            "participants.create busy",
            PEOPLE,
            "post",
            201,
            lambda c: c.conferences(room.sid).participants.create(from_=NUMBER, to=busy),
        )
        await asyncio.wait_for(env.sandbox.calls[dialled.call_sid].ended.wait(), 5)
        people = await rest(
            "participants.list", PEOPLE, "get", 200, lambda c: c.conferences(room.sid).participants.list()
        )
        assert [str(p.call_sid) for p in people] == [customer]
        assert room.status == "init"
        _, seen = await env.sim("GET", "conferences")
        (shown,) = seen["conferences"]
        assert [p["call_sid"] for p in shown["participants"]] == [customer] and shown["status"] == "init"
        unanswered = await asyncio.to_thread(
            lambda: rest.client.conferences("nobody-joins").participants.create(from_=NUMBER, to=busy)
        )
        await asyncio.wait_for(env.sandbox.calls[unanswered.call_sid].ended.wait(), 5)
        # Nobody ever entered it: Twilio never had such a conference.
        assert (
            await asyncio.to_thread(lambda: rest.client.conferences.list(friendly_name="nobody-joins")) == []
        )
        calls_before = len(env.sandbox.calls)
        refusals = [
            (404, 20404, lambda: rest.client.conferences("CF" + "0" * 32).fetch()),
            (404, 20404, lambda: rest.client.conferences(room.sid).participants("nobody").fetch()),
            (
                400,
                20001,
                lambda: rest.client.conferences(room.sid).participants(customer).update(coaching=True),
            ),
            (
                400,
                20001,
                lambda: rest.client.conferences(room.sid).participants.create(
                    from_=NUMBER, to="client:bob", coaching=True, call_sid_to_coach="CA" + "1" * 32
                ),
            ),
            (
                400,
                21211,
                lambda: rest.client.conferences(room.sid).participants.create(from_=NUMBER, to="nobody"),
            ),
            (400, 20001, lambda: rest.client.conferences(room.sid).update(status="in-progress")),
            (
                400,
                21625,
                lambda: rest.client.conferences("never").participants.create(
                    from_=NUMBER, to=busy, machine_detection="Sometimes"
                ),
            ),
        ]
        for status, code, act in refusals:
            with pytest.raises(TwilioRestException) as raised:
                await asyncio.to_thread(act)
            assert (raised.value.status, raised.value.code) == (status, code)
        # A refused participant dials nobody and opens no conference.
        assert not [c for c in env.sandbox.conferences.values() if c.friendly_name == "never"]
        assert len(env.sandbox.calls) == calls_before
        await env.sim("POST", f"calls/{customer}/hangup", {})
        await env.settled(customer)
        assert room.status == "completed" and room.reason_ended == "last-participant-left"
        rest.check()


async def test_announcements_are_requested_and_reported_and_no_recordings_are_listed() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice", _conference_twiml("room-4", "/conf", statusCallbackEvent="start end announcement")
        )
        env.fake.answer("/announce", TWIML.format("<Say>Closing soon</Say>"))
        env.fake.status["/broken"] = 500
        rest = Recorder(env)
        customer = await env.call({})
        await until(lambda: _room_of(env, "room-4") is not None, what="room")
        sid = _room_of(env, "room-4").sid
        announce = env.fake.url("/announce")
        await rest(
            "conferences.update announce",
            ROOM,
            "post",
            200,
            lambda c: c.conferences(sid).update(announce_url=announce),
        )
        (everyone,) = await env.fake.wait_for("/conf")
        assert (
            everyone.params["StatusCallbackEvent"] == "announcement-end" and "CallSid" not in everyone.params
        )
        broken = env.fake.url("/broken")
        await rest(
            "participants.update announce",
            PERSON,
            "post",
            200,
            lambda c: c.conferences(sid).participants(customer).update(announce_url=broken),
        )
        hooks = await env.fake.wait_for("/conf", 2)
        assert (hooks[1].params["StatusCallbackEvent"], hooks[1].params["CallSid"]) == (
            "announcement-fail",
            customer,
        )
        assert env.fake.at("/announce")[0].params["ConferenceSid"] == sid
        recordings = await rest(
            "conference recordings.list",
            "Conferences/{ConferenceSid}/Recordings.json",
            "get",
            200,
            lambda c: c.conferences(sid).recordings.list(),
        )
        assert recordings == []
        await env.sim("POST", f"calls/{customer}/hangup", {})
        await env.settled(customer)
        rest.check()


async def test_wait_music_plays_until_the_conference_starts_and_hold_music_while_held() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", _conference_twiml("room-5", "/conf", waitUrl="/wait"))
        env.fake.answer("/wait", TWIML.format("<Play>https://example.com/music.mp3</Play>"))
        env.fake.answer("/hold-music", TWIML.format('<Say loop="2">Please hold</Say>'))
        customer = await env.call({})
        waits = await env.fake.wait_for("/wait", 2)  # requested again once it has played
        assert waits[0].params["CallSid"] == customer and waits[0].method == "POST"
        room = _room_of(env, "room-5")
        client = Recorder(env).client
        await asyncio.to_thread(
            lambda: client.conferences(room.sid).participants.create(from_=NUMBER, to="client:alice")
        )
        await _answer(env, "alice")
        await until(lambda: room.status == "in-progress", what="started")
        await asyncio.sleep(0.3)  # a request under way when it started may still land
        heard = len(env.fake.at("/wait"))
        await asyncio.sleep(0.3)
        assert len(env.fake.at("/wait")) == heard  # no more wait music once it started

        hold_music = env.fake.url("/hold-music")
        await asyncio.to_thread(
            lambda: client.conferences(room.sid).participants(customer).update(hold=True, hold_url=hold_music)
        )
        holds = await env.fake.wait_for("/hold-music", 2)
        assert holds[0].method == "GET" and holds[0].params["CallSid"] == customer
        await asyncio.to_thread(
            lambda: client.conferences(room.sid).participants(customer).update(hold=False)
        )
        await asyncio.sleep(0.3)
        held = len(env.fake.at("/hold-music"))
        await asyncio.sleep(0.3)
        assert len(env.fake.at("/hold-music")) == held
        await env.sim("POST", f"calls/{customer}/hangup", {})
        await env.settled(customer)


async def test_a_participant_redirected_by_the_api_leaves_and_a_full_room_refuses_more() -> None:
    async with sandbox_env(outcomes=LONG_TALK) as env:
        env.fake.answer("/voice", _conference_twiml("room-6", "/conf", maxParticipants="2"))
        env.fake.answer("/after", TWIML.format("<Hangup/>"))
        client = Recorder(env).client
        first = await env.call({})
        second = await env.call({})
        await until(
            lambda: _room_of(env, "room-6") is not None and _room_of(env, "room-6").status == "in-progress"
        )
        assert (await env.state(first))["conference"] == "room-6"
        third = await env.call({})
        await env.settled(third)
        (refused,) = [h for h in env.fake.at("/after") if h.params["CallSid"] == third]
        assert refused.params["DialCallStatus"] == "failed"  # the room holds two
        await asyncio.to_thread(
            lambda: client.calls(first).update(twiml=TWIML.format('<Say>Moved</Say><Pause length="600"/>'))
        )
        room = _room_of(env, "room-6")
        await until(lambda: len(room.present()) == 1, what="the first caller left")
        assert room.status == "in-progress" and (await env.state(first))["conference"] is None
        leaves = [
            h
            for h in await env.fake.wait_for("/conf", 4)
            if h.params["StatusCallbackEvent"] == "participant-leave"
        ]
        assert [h.params["CallSid"] for h in leaves] == [first]
        assert not [h for h in env.fake.at("/after") if h.params["CallSid"] == first]  # redirected: no action
        for call in (first, second):
            await env.sim("POST", f"calls/{call}/hangup", {})
            await env.settled(call)
        assert room.status == "completed" and room.reason_ended == "last-participant-left"
