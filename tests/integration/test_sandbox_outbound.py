"""Outbound calls through the sandbox: seeded outcomes, machine detection, callbacks, live updates."""

from __future__ import annotations

from collections import Counter
from typing import Any

from contact_center.sandbox import CallOutcomes
from tests.support.sandbox_harness import CALLER, NUMBER, TWIML, Env, events, sandbox_env

FAST: dict[str, Any] = {"ring_seconds": (1.0, 2.0), "talk_seconds": (5.0, 10.0), "amd_seconds": (1.0, 2.0)}
HANGUP = TWIML.format("<Hangup/>")


def outcomes(**weights: float) -> CallOutcomes:
    values: dict[str, Any] = {"human": 0.0, "machine": 0.0, "busy": 0.0, "no_answer": 0.0, "failed": 0.0}
    values.update(weights)
    return CallOutcomes(**values, **FAST)


async def _dial(env: Env, **form: str) -> dict[str, Any]:
    data = {"To": CALLER, "From": NUMBER, "Timeout": "10", **form}
    if "Url" not in data and "Twiml" not in data:
        data["Twiml"] = HANGUP
    status, call = await env.rest("POST", "Calls.json", data=data)
    assert status == 201, call
    return dict(call)


async def test_outcomes_follow_the_probabilities() -> None:
    async with sandbox_env(outcomes=outcomes(human=0.5, busy=0.3, no_answer=0.2)) as env:
        for _ in range(60):
            await _dial(env, StatusCallback=env.fake.url("/out-status"))
        callbacks = await env.fake.wait_for("/out-status", 60)
        counts = Counter(c.params["CallStatus"] for c in callbacks)
        assert set(counts) <= {"completed", "busy", "no-answer"}
        assert abs(counts["completed"] - 30) <= 12, counts
        assert abs(counts["busy"] - 18) <= 10, counts
        assert abs(counts["no-answer"] - 12) <= 9, counts
        for callback in callbacks:
            assert callback.params["SequenceNumber"] == "0"  # only "completed" was asked for
            expected = {"completed": "200", "busy": "486", "no-answer": "487"}[callback.params["CallStatus"]]
            assert callback.params["SipResponseCode"] == expected


async def test_same_seed_same_outcomes() -> None:
    async with sandbox_env(outcomes=outcomes(human=1, busy=1, no_answer=1, failed=1)) as env:

        async def run() -> list[str]:
            statuses = []
            for _ in range(12):
                call = await _dial(env)
                state = await env.settled(call["sid"])
                statuses.append(state["status"])
            return statuses

        await env.sim("POST", "reset", {"seed": 3})
        first = await run()
        await env.sim("POST", "reset", {"seed": 3})
        assert await run() == first
        assert len(set(first)) > 1


async def test_machine_detection_reports_answered_by() -> None:
    async with sandbox_env(outcomes=outcomes(machine=1)) as env:
        env.fake.answer("/answered", HANGUP)
        call = await _dial(env, Url=env.fake.url("/answered"), MachineDetection="Enable")
        await env.settled(call["sid"])
        call = await _dial(env, Url=env.fake.url("/answered"), MachineDetection="DetectMessageEnd")
        await env.settled(call["sid"])
        answered = env.fake.at("/answered")
        assert [w.params["AnsweredBy"] for w in answered] == ["machine_start", "machine_end_beep"]
        assert all(w.params["CallStatus"] == "in-progress" for w in answered)
        assert all(w.params["Direction"] == "outbound-api" for w in answered)
        _, fetched = await env.rest("GET", f"Calls/{call['sid']}.json")
        assert fetched["answered_by"] == "machine_end_beep"

    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        env.fake.answer("/answered", HANGUP)
        call = await _dial(env, Url=env.fake.url("/answered"), MachineDetection="Enable")
        await env.settled(call["sid"])
        assert env.fake.at("/answered")[0].params["AnsweredBy"] == "human"
        call = await _dial(env, Url=env.fake.url("/answered"))
        await env.settled(call["sid"])
        assert "AnsweredBy" not in env.fake.at("/answered")[1].params


async def test_async_amd_posts_its_own_callback() -> None:
    async with sandbox_env(outcomes=outcomes(machine=1)) as env:
        env.fake.answer("/answered", TWIML.format('<Pause length="30"/>'))
        call = await _dial(
            env,
            Url=env.fake.url("/answered"),
            MachineDetection="Enable",
            AsyncAmd="true",
            AsyncAmdStatusCallback=env.fake.url("/amd"),
        )
        (amd,) = await env.fake.wait_for("/amd")
        assert amd.params["AnsweredBy"] == "machine_start"
        assert amd.params["CallSid"] == call["sid"]
        assert 1000 <= int(amd.params["MachineDetectionDuration"]) <= 2000
        assert "AnsweredBy" not in env.fake.at("/answered")[0].params
        await env.settled(call["sid"])


async def test_status_callback_events_and_callee_hang_up() -> None:
    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        env.fake.answer("/answered", TWIML.format('<Say>Hello from the dialer</Say><Pause length="600"/>'))
        call = await _dial(
            env,
            Url=env.fake.url("/answered"),
            StatusCallback=env.fake.url("/out-status"),
        )
        state = await env.settled(call["sid"])
        (completed,) = env.fake.at("/out-status")  # by default only "completed"
        assert completed.params["CallStatus"] == "completed"
        assert state["status"] == "completed"
        assert [e["by"] for e in events(state, "hangup")] == ["callee"]
        assert 5 <= state["duration"] <= 15

    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        env.fake.answer("/answered", TWIML.format('<Pause length="600"/>'))
        form = [
            ("To", CALLER),
            ("From", NUMBER),
            ("Url", env.fake.url("/answered")),
            ("StatusCallback", env.fake.url("/out-status")),
        ] + [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")]
        status, call = await env.rest("POST", "Calls.json", data=form)
        assert status == 201
        callbacks = await env.fake.wait_for("/out-status", 4)
        statuses = [c.params["CallStatus"] for c in callbacks]
        assert statuses == ["initiated", "ringing", "in-progress", "completed"]
        assert [c.params["SequenceNumber"] for c in callbacks] == ["0", "1", "2", "3"]
        assert 5 <= int(callbacks[-1].params["CallDuration"]) <= 15


async def test_jittered_callbacks_may_arrive_out_of_order_but_keep_their_sequence_numbers() -> None:
    async with sandbox_env(outcomes=outcomes(human=1), callback_jitter_seconds=20.0) as env:
        form = [("To", CALLER), ("From", NUMBER), ("Twiml", HANGUP), ("StatusCallback", env.fake.url("/s"))]
        form += [("StatusCallbackEvent", e) for e in ("initiated", "ringing", "answered", "completed")]
        for _ in range(5):
            await env.rest("POST", "Calls.json", data=form)
        callbacks = await env.fake.wait_for("/s", 20)
        by_call: dict[str, list[tuple[int, str]]] = {}
        for c in callbacks:
            by_call.setdefault(c.params["CallSid"], []).append(
                (int(c.params["SequenceNumber"]), c.params["CallStatus"])
            )
        for received in by_call.values():
            assert [s for _, s in sorted(received)] == ["initiated", "ringing", "in-progress", "completed"]
        assert any([n for n, _ in r] != [0, 1, 2, 3] for r in by_call.values())


async def test_cancel_while_ringing_and_complete_while_talking() -> None:
    slow = CallOutcomes(human=1, machine=0, busy=0, no_answer=0, failed=0, ring_seconds=(50.0, 50.0))
    async with sandbox_env(outcomes=slow) as env:
        call = await _dial(env, Timeout="60", StatusCallback=env.fake.url("/out-status"))
        await env.until(call["sid"], lambda s: s["status"] == "ringing")
        status, updated = await env.rest("POST", f"Calls/{call['sid']}.json", data={"Status": "canceled"})
        assert status == 200 and updated["status"] == "canceled"
        (callback,) = await env.fake.wait_for("/out-status")
        assert callback.params["CallStatus"] == "canceled"
        status, body = await env.rest("POST", f"Calls/{call['sid']}.json", data={"Url": env.fake.url("/x")})
        assert status == 400 and body["code"] == 21220

    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        env.fake.answer("/answered", TWIML.format('<Pause length="600"/>'))
        call = await _dial(env, Url=env.fake.url("/answered"))
        await env.until(call["sid"], lambda s: s["status"] == "in-progress")
        status, updated = await env.rest("POST", f"Calls/{call['sid']}.json", data={"Status": "completed"})
        assert status == 200 and updated["status"] == "completed"
        assert updated["end_time"] and updated["duration"] is not None


async def test_live_redirect_runs_the_new_twiml() -> None:
    async with sandbox_env(outcomes=outcomes(human=1)) as env:
        env.fake.answer("/answered", TWIML.format('<Play loop="0">http://example.invalid/hold.mp3</Play>'))
        env.fake.answer("/whisper", TWIML.format("<Say>New instructions</Say><Hangup/>"))
        call = await _dial(env, Url=env.fake.url("/answered"))
        await env.until(call["sid"], lambda s: len(events(s, "play")) == 1)
        status, _ = await env.rest(
            "POST", f"Calls/{call['sid']}.json", data={"Url": env.fake.url("/whisper"), "Method": "POST"}
        )
        assert status == 200
        state = await env.settled(call["sid"])
        assert [e["text"] for e in events(state, "say")] == ["New instructions"]
        status, _ = await env.rest(
            "POST", f"Calls/{call['sid']}.json", data={"Twiml": "<Response><Say>late</Say></Response>"}
        )
        assert status == 400


async def test_outbound_to_a_browser_client() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/agent", TWIML.format('<Say>You have a callback to make</Say><Pause length="600"/>'))
        call = await _dial(env, To="client:alice", Url=env.fake.url("/agent"), Timeout="600")
        ringing = await env.ringing("alice")
        assert [r["call_sid"] for r in ringing] == [call["sid"]]
        status, answer = await env.sim("POST", "clients/alice/answer", {})
        assert status == 200 and answer["status"] == "in-progress"
        (webhook,) = await env.fake.wait_for("/agent")
        assert webhook.params["To"] == "client:alice"
        await env.sim("POST", f"calls/{call['sid']}/hangup", {"side": "agent"})
        state = await env.settled(call["sid"])
        assert state["status"] == "completed"
