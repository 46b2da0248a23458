"""Every leg a ``<Dial>`` rings ends, whoever hangs up and whenever: agent browsers that answer by
themselves, callers hanging up seconds into the call (around the moment the agent answers), and
legs that left the bridge to run TwiML of their own."""

from __future__ import annotations

import asyncio

from contact_center.sandbox.model import Call
from tests.support.sandbox_harness import TWIML, Env, sandbox_env
from tests.support.waiting import until

DIAL = TWIML.format('<Dial action="/dial-done" timeout="30"><Client>agent-{}</Client></Dial>')


def _legs(env: Env, parent: str) -> list[Call]:
    return [c for c in env.sandbox.calls.values() if c.parent_call_sid == parent]


async def test_auto_answered_legs_end_when_callers_hang_up_seconds_into_the_call() -> None:
    async with sandbox_env(client_auto_answer_seconds=1.0) as env:
        env.fake.answer("/voice", lambda params: DIAL.format(len(env.fake.at("/voice")) % 3))
        callers = []
        for index in range(24):
            # Around the answer (1 s), and after it: 0.9 .. 3.2 simulated seconds.
            callers.append(await env.call({"hangup_after_seconds": 0.9 + 0.1 * index}))
        await asyncio.gather(*(env.settled(sid, timeout=15) for sid in callers))
        # A caller may hang up before its ``<Dial>`` starts on a loaded machine (0.9 simulated seconds is
        # 9 ms here): such a caller rings nobody; every caller that dialed rings exactly one leg.
        dialed = [sid for sid in callers if any(e["event"] == "dial" for e in env.sandbox.calls[sid].log)]
        assert len(dialed) >= len(callers) // 2, f"only {len(dialed)} of {len(callers)} callers dialed"
        for sid in callers:
            assert len(_legs(env, sid)) == (1 if sid in dialed else 0), env.sandbox.calls[sid].log
        legs = [leg for sid in callers for leg in _legs(env, sid)]
        await until(lambda: all(leg.is_final for leg in legs), timeout=10, what="every agent leg ends")
        assert any(leg.answered_at is not None for leg in legs)
        for leg in legs:
            assert leg.status in ("completed", "canceled"), (leg.sid, leg.status, leg.log)
            assert leg.status == ("completed" if leg.answered_at is not None else "canceled")


async def test_an_auto_answered_agent_hangs_up() -> None:
    async with sandbox_env(client_auto_answer_seconds=1.0) as env:
        env.fake.answer("/voice", DIAL.format(1))
        env.fake.answer("/dial-done", TWIML.format("<Hangup/>"))
        sid = await env.call({})
        await env.until(sid, lambda s: s["bridged_with"] is not None)
        status, leg = await env.sim("POST", f"calls/{sid}/hangup", {"side": "agent"})
        assert status == 200 and leg["status"] == "completed", leg
        caller = await env.settled(sid)
        assert caller["status"] == "completed"
        assert env.fake.at("/dial-done")[0].params["DialCallStatus"] == "completed"


async def test_a_leg_that_left_to_run_twiml_of_its_own_ends_with_it() -> None:
    async with sandbox_env(client_auto_answer_seconds=1.0) as env:
        env.fake.answer("/voice", DIAL.format(2))
        env.fake.answer("/agent-alone", TWIML.format('<Say>Wrap up</Say><Pause length="2"/>'))
        sid = await env.call({"hangup_after_seconds": 30})
        await env.until(sid, lambda s: s["bridged_with"] is not None)
        (leg,) = _legs(env, sid)
        status, _ = await env.rest(
            "POST", f"Calls/{leg.sid}.json", data={"Url": env.fake.url("/agent-alone")}
        )
        assert status == 200
        await env.settled(sid, timeout=10)  # the caller, alone, ends with the dial action's document
        await until(lambda: leg.is_final, timeout=10, what="the leg's own TwiML ends it")
        assert leg.status == "completed"
