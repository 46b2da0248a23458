"""The sandbox as a dialer meets Twilio: the calls-per-second queue, 20429 refusals, and answering
machine detection's full set of answers, timing, mistakes and timeout; driven by twilio-python."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from channels.twilio.gateway import TwilioGateway
from contact_center.sandbox import CallOutcomes, Lognormal
from tests.support.sandbox_harness import CALLER, NUMBER, SID, TOKEN, TWIML, Env, sandbox_env, twilio_client

HANGUP = TWIML.format("<Hangup/>")
NO_CHANCE: dict[str, Any] = {"human": 0.0, "machine": 0.0, "busy": 0.0, "no_answer": 0.0, "failed": 0.0}
QUICK: dict[str, Any] = {
    "ring_seconds": Lognormal(1.0, 0),
    "talk_seconds": Lognormal(60.0, 0),
    "amd_seconds": Lognormal(1.5, 0),
    "greeting_seconds": Lognormal(4.0, 0),
    "calls_per_second": 1000.0,
}


def outcomes(**values: Any) -> CallOutcomes:
    return CallOutcomes(**{**NO_CHANCE, **QUICK, **values})


async def create(env: Env, to: str = CALLER, **params: Any) -> Any:
    """``client.calls.create`` with the official client, off the event loop."""
    params.setdefault("url", env.fake.url("/answered"))

    def call() -> Any:
        return twilio_client(env).calls.create(to=to, from_=NUMBER, **params)

    return await asyncio.to_thread(call)


async def fetch(env: Env, sid: str) -> Any:
    return await asyncio.to_thread(lambda: twilio_client(env).calls(sid).fetch())


# -- calls per second -----------------------------------------------------------------------------


async def test_simultaneous_creates_start_one_by_one_at_the_accounts_rate() -> None:
    scale = 0.05  # one call per simulated second: one every 50 ms of real time
    async with sandbox_env(time_scale=scale, outcomes=outcomes(busy=1, calls_per_second=1.0)) as env:
        initiated: list[float] = []

        def arrived(params: dict[str, str]) -> str:
            if params.get("CallStatus") == "initiated":
                initiated.append(time.monotonic())
            return ""

        env.fake.answer("/out-status", arrived)
        created = await asyncio.gather(
            *(
                create(
                    env,
                    twiml=HANGUP,
                    url=None,
                    status_callback=env.fake.url("/out-status"),
                    status_callback_event=["initiated", "completed"],
                )
                for _ in range(20)
            )
        )
        assert {c.status for c in created} == {"queued"}
        waiting = [await fetch(env, c.sid) for c in created]
        assert any(c.status == "queued" for c in waiting)  # still waiting their turn

        await env.fake.wait_for("/out-status", 40, timeout=10)
        assert len(initiated) == 20
        # Twenty starts are at least nineteen gaps of one simulated second apart.
        assert max(initiated) - min(initiated) >= 19 * scale * 0.8
        ended = [await fetch(env, c.sid) for c in created]
        waits = sorted(int(c.queue_time) for c in ended)
        assert waits[0] < 1000
        assert waits[-1] >= 10_000  # in simulated milliseconds: the last waited most of 19 s


async def test_creates_within_a_high_rate_start_at_once() -> None:
    async with sandbox_env(outcomes=outcomes(busy=1)) as env:  # 1000 calls per second
        created = await asyncio.gather(*(create(env, twiml=HANGUP, url=None) for _ in range(5)))
        for call in created:
            assert (await env.settled(call.sid))["status"] == "busy"
        fetched = [await fetch(env, c.sid) for c in created]
        assert all(int(c.queue_time) < 50 for c in fetched)


async def test_a_queued_call_can_be_canceled_before_it_starts() -> None:
    async with sandbox_env(time_scale=0.05, outcomes=outcomes(human=1, calls_per_second=0.1)) as env:
        first = await create(env, twiml=HANGUP, url=None)
        second = await create(env, twiml=HANGUP, url=None, status_callback=env.fake.url("/out-status"))
        assert (await fetch(env, second.sid)).status == "queued"
        await asyncio.to_thread(lambda: twilio_client(env).calls(second.sid).update(status="canceled"))
        (done,) = await env.fake.wait_for("/out-status")
        assert done.params["CallStatus"] == "canceled"
        await env.settled(first.sid)


async def test_too_many_requests_can_be_provoked() -> None:
    async with sandbox_env(outcomes=outcomes(busy=1)) as env:
        status, answer = await env.sim("POST", "calls/throttle", {"count": 2})
        assert status == 200, answer
        for _ in range(2):
            with pytest.raises(TwilioRestException) as refused:
                await create(env, twiml=HANGUP, url=None)
            assert (refused.value.status, refused.value.code) == (429, 20429)
        call = await create(env, twiml=HANGUP, url=None)  # the third goes through
        await env.settled(call.sid)
        assert (await env.sim("POST", "calls/throttle", {"count": -1}))[0] == 400

    async with sandbox_env(outcomes=outcomes(busy=1, fail_with_20429_rate=1.0)) as env:
        with pytest.raises(TwilioRestException) as refused:
            await create(env, twiml=HANGUP, url=None)
        assert refused.value.code == 20429
        assert not env.sandbox.calls


async def test_the_service_gateway_retries_a_throttled_create() -> None:
    async with sandbox_env(outcomes=outcomes(busy=1)) as env:
        await env.sim("POST", "calls/throttle", {"count": 2})
        gateway = TwilioGateway(account_sid=SID, auth_token=TOKEN, base_url=env.base_url)
        try:
            sid = await gateway.place_call(
                to=CALLER, from_=NUMBER, url=env.fake.url("/answered"), status_callback=env.fake.url("/s")
            )
        finally:
            await gateway.close()
        assert list(env.sandbox.calls) == [sid]  # two refusals, then one call


# -- answering machine detection -------------------------------------------------------------------


async def answered_by(env: Env, to: str = CALLER, **params: Any) -> dict[str, str]:
    """The parameters of the answered call's first TwiML request."""
    env.fake.answer("/answered", HANGUP)
    before = len(env.fake.at("/answered"))
    call = await create(env, to=to, **params)
    await env.settled(call.sid)
    return env.fake.at("/answered")[before].params


async def test_detect_message_end_waits_for_the_greeting_to_end() -> None:
    only_silence = {"machine_end_beep": 0.0, "machine_end_other": 0.0, "machine_end_silence": 1.0}
    async with sandbox_env(outcomes=outcomes(machine=1, **only_silence)) as env:
        start = await answered_by(env, machine_detection="Enable")
        assert (start["AnsweredBy"], start["MachineDetectionDuration"]) == ("machine_start", "1500")
        end = await answered_by(env, machine_detection="DetectMessageEnd")
        # A 4 s greeting, then Twilio's 5 s of silence before it gives up waiting for a beep.
        assert (end["AnsweredBy"], end["MachineDetectionDuration"]) == ("machine_end_silence", "9000")

    async with sandbox_env(outcomes=outcomes(machine=1, machine_end_silence=0.0)) as env:
        seen = {
            (await answered_by(env, machine_detection="DetectMessageEnd"))["AnsweredBy"] for _ in range(30)
        }
        assert seen == {"machine_end_beep", "machine_end_other"}


async def test_the_detection_timeout_answers_unknown() -> None:
    async with sandbox_env(outcomes=outcomes(machine=1, greeting_seconds=Lognormal(40.0, 0))) as env:
        params = await answered_by(env, machine_detection="DetectMessageEnd", machine_detection_timeout=10)
        assert (params["AnsweredBy"], params["MachineDetectionDuration"]) == ("unknown", "10000")
        fetched = await fetch(env, params["CallSid"])
        assert fetched.answered_by == "unknown"


async def test_a_fax_is_told_apart() -> None:
    async with sandbox_env(outcomes=outcomes(fax=1)) as env:
        assert (await answered_by(env, machine_detection="Enable"))["AnsweredBy"] == "fax"


async def test_detection_makes_the_configured_mistakes() -> None:
    async with sandbox_env(outcomes=outcomes(human=1, human_as_machine=1.0)) as env:
        assert (await answered_by(env, machine_detection="Enable"))["AnsweredBy"] == "machine_start"
    async with sandbox_env(outcomes=outcomes(machine=1, machine_as_human=1.0)) as env:
        assert (await answered_by(env, machine_detection="DetectMessageEnd"))["AnsweredBy"] == "human"
    async with sandbox_env(outcomes=outcomes(human=1, human_as_machine=0.5)) as env:
        counts = Counter(
            [(await answered_by(env, machine_detection="Enable"))["AnsweredBy"] for _ in range(40)]
        )
        assert set(counts) == {"human", "machine_start"}
        assert 8 <= counts["human"] <= 32, counts


async def test_calls_to_a_number_end_as_scripted() -> None:
    other = "+14155550123"
    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        script = {"to": other, "outcome": "machine", "answered_by": "machine_end_other"}
        assert (await env.sim("POST", "calls/outcomes", script))[0] == 200
        scripted = await answered_by(env, to=other, machine_detection="Enable")
        assert scripted["AnsweredBy"] == "machine_end_other"
        assert (await answered_by(env, machine_detection="Enable"))["AnsweredBy"] == "human"  # others: odds

        await env.sim("POST", "calls/outcomes", {"to": other, "outcome": "busy"})
        busy = await create(env, to=other)
        assert (await env.settled(busy.sid))["status"] == "busy"

        await env.sim("POST", "calls/outcomes", {"to": other, "outcome": None})
        assert (await answered_by(env, to=other, machine_detection="Enable"))["AnsweredBy"] == "human"

        assert (await env.sim("POST", "calls/outcomes", {"to": other, "outcome": "robot"}))[0] == 400
        bad = {"to": other, "outcome": "human", "answered_by": "maybe"}
        assert (await env.sim("POST", "calls/outcomes", bad))[0] == 400


def test_lognormal_durations_have_the_configured_mean() -> None:
    import random

    rng = random.Random(1)
    draws = [Lognormal(8.0, 0.5).draw(rng) for _ in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(8.0, rel=0.05)
    assert min(draws) > 0 and max(draws) > 16  # a long tail, unlike a uniform range
    assert Lognormal(3.0, 0).draw(rng) == 3.0
