"""The sandbox rings the service like Twilio: signed webhooks, TwiML, agents' browsers, callbacks."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

from tests.support.sandbox_harness import CALLER, NUMBER, SID, TWIML, Env, events, sandbox_env

CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
DIAL_ALICE = TWIML.format(
    '<Say>Connecting you</Say><Dial action="/dial-done" timeout="600"><Client>alice</Client></Dial>'
)


async def _answer_alice(env: Env, call_sid: str) -> str:
    ringing = await env.ringing("alice")
    assert [r["parent_call_sid"] for r in ringing] == [call_sid]
    status, answer = await env.sim("POST", "clients/alice/answer", {"call_sid": call_sid})
    assert status == 200 and answer["status"] == "in-progress", answer
    return str(answer["call_sid"])


async def test_dial_client_answered_bridged_then_agent_hangs_up() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", DIAL_ALICE)
        env.fake.answer("/dial-done", TWIML.format("<Say>Goodbye</Say><Hangup/>"))
        sid = await env.call({"caller_name": "Ada"})
        assert CALL_SID.match(sid)

        leg = await _answer_alice(env, sid)
        state = await env.until(sid, lambda s: s["bridged_with"] == leg)
        assert state["status"] == "in-progress"
        status, _ = await env.sim("POST", f"calls/{sid}/hangup", {"side": "agent"})
        assert status == 200
        final = await env.settled(sid)

        (voice,) = env.fake.at("/voice")
        assert voice.method == "POST"
        assert voice.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert voice.params.pop("CallToken")  # opaque: what forwarding the call would present
        assert voice.params == {
            "AccountSid": SID,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "CallStatus": "ringing",
            "Called": NUMBER,
            "Caller": CALLER,
            "CallerName": "Ada",
            "Direction": "inbound",
            "From": CALLER,
            "To": NUMBER,
            **{
                f"{who}{what}": ""
                for who in ("From", "To", "Caller", "Called")
                for what in ("City", "State", "Zip")
            },
            **{f"{who}Country": "US" for who in ("From", "To", "Caller", "Called")},
        }
        (action,) = env.fake.at("/dial-done")
        assert action.params["DialCallStatus"] == "completed"
        assert action.params["DialCallSid"] == leg
        assert action.params["DialBridged"] == "true"
        assert int(action.params["DialCallDuration"]) >= 0
        assert action.params["CallStatus"] == "in-progress"

        # A Twilio phone number's status callback has no event setting: only the final event.
        callbacks = env.fake.at("/status")
        assert [c.params["CallStatus"] for c in callbacks] == ["completed"]
        assert [int(c.params["SequenceNumber"]) for c in callbacks] == [0]
        for callback in callbacks:
            assert callback.params["CallbackSource"] == "call-progress-events"
            assert parsedate_to_datetime(callback.params["Timestamp"]).tzinfo is not None
        completed = callbacks[-1].params
        assert completed["SipResponseCode"] == "200"
        assert int(completed["CallDuration"]) == final["duration"]

        assert final["status"] == "completed"
        said = [e["text"] for e in events(final, "say")]
        assert said == ["Connecting you", "Goodbye"]
        agent = await env.state(leg)
        assert agent["status"] == "completed"
        assert agent["direction"] == "outbound-dial" and agent["to"] == "client:alice"
        assert agent["parent_call_sid"] == sid


async def test_caller_hangs_up_while_bridged_ends_the_agent_leg_and_still_posts_the_action() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", DIAL_ALICE)
        sid = await env.call({})
        leg = await _answer_alice(env, sid)
        await env.sim("POST", f"calls/{leg}/hangup", {"side": "caller"})
        await env.settled(sid)
        assert (await env.state(leg))["status"] == "completed"
        (action,) = await env.fake.wait_for("/dial-done")
        assert action.params["DialCallStatus"] == "completed"
        assert action.params["CallStatus"] == "completed"


async def test_client_that_never_answers_gives_no_answer_and_the_call_goes_on() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice",
            TWIML.format('<Dial timeout="5" action="dial-done"><Client>bob</Client></Dial>'),
        )
        env.fake.answer("/dial-done", TWIML.format("<Say>Nobody is free</Say>"))
        sid = await env.call({})
        state = await env.settled(sid)
        (action,) = env.fake.at("/dial-done")  # relative action: resolved against /voice's URL
        assert action.params["DialCallStatus"] == "no-answer"
        assert action.params["DialBridged"] == "false"
        assert state["status"] == "completed"
        assert [e["text"] for e in events(state, "say")] == ["Nobody is free"]


async def test_rejected_client_is_busy() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", DIAL_ALICE)
        sid = await env.call({})
        await env.ringing("alice")
        status, answer = await env.sim("POST", "clients/alice/reject", {})
        assert status == 200 and answer["status"] == "busy"
        (action,) = await env.fake.wait_for("/dial-done")
        assert action.params["DialCallStatus"] == "busy"
        await env.settled(sid)


async def test_dial_without_action_continues_with_the_next_verb() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice", TWIML.format('<Dial timeout="2"><Client>carol</Client></Dial><Say>After dial</Say>')
        )
        state = await env.settled(await env.call({}))
        assert [e["text"] for e in events(state, "say")] == ["After dial"]


async def test_record_posts_action_and_recording_status_callback() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice",
            TWIML.format(
                "<Say>Leave a message</Say>"
                '<Record action="/recorded" maxLength="30" recordingStatusCallback="/recording-status"/>'
            ),
        )
        env.fake.answer("/recorded", TWIML.format("<Hangup/>"))
        sid = await env.call({"record_seconds": 12})
        await env.settled(sid)
        (action,) = env.fake.at("/recorded")
        recording_sid = action.params["RecordingSid"]
        assert re.match(r"^RE[0-9a-f]{32}$", recording_sid)
        assert action.params["RecordingDuration"] == "12"
        assert action.params["Digits"] == ""
        assert (
            action.params["RecordingUrl"]
            == f"{env.base_url}/2010-04-01/Accounts/{SID}/Recordings/{recording_sid}"
        )
        (callback,) = await env.fake.wait_for("/recording-status")
        assert callback.params["RecordingStatus"] == "completed"
        assert callback.params["RecordingSid"] == recording_sid
        assert callback.params["RecordingDuration"] == "12"
        assert callback.params["CallSid"] == sid

        status, recording = await env.rest("GET", f"Recordings/{recording_sid}.json")
        assert status == 200 and recording["call_sid"] == sid and recording["duration"] == "12"
        audio = await env.client.get(
            action.params["RecordingUrl"].removeprefix(env.base_url), headers=env.auth_header
        )
        assert audio.status == 200 and (await audio.read())[:4] == b"RIFF"


async def test_caller_hanging_up_during_record_sends_digits_hangup() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", TWIML.format('<Record action="/recorded" maxLength="600"/>'))
        sid = await env.call({"record_seconds": 600, "hangup_after_seconds": 3})
        state = await env.settled(sid)
        # The action request and the call's end are concurrent, as with Twilio.
        (action,) = await env.fake.wait_for("/recorded")
        assert action.params["Digits"] == "hangup"
        assert state["status"] == "completed"


async def test_gather_takes_the_callers_digits() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice",
            TWIML.format('<Gather action="/menu" numDigits="1"><Say>Press 1 for sales</Say></Gather>'),
        )
        env.fake.answer(
            "/menu", TWIML.format('<Gather action="/account" timeout="3"><Say>Your account</Say></Gather>')
        )
        env.fake.answer("/account", TWIML.format("<Hangup/>"))
        sid = await env.call({"digits": "2,4711#"})
        await env.settled(sid)
        (menu,) = env.fake.at("/menu")
        assert menu.params["Digits"] == "2"
        (account,) = env.fake.at("/account")
        assert account.params["Digits"] == "4711"
        assert account.params["FinishedOnKey"] == "#"


async def test_gather_without_input_falls_through_then_live_keys_work() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice",
            TWIML.format(
                '<Gather action="/first" timeout="1"><Say>Anything?</Say></Gather>'
                '<Gather action="/second" timeout="600"/>'
            ),
        )
        sid = await env.call({})
        await env.until(sid, lambda s: len(events(s, "gather")) == 2)
        status, _ = await env.sim("POST", f"calls/{sid}/digits", {"digits": "9#"})
        assert status == 200
        (second,) = await env.fake.wait_for("/second")
        assert second.params["Digits"] == "9"
        assert env.fake.at("/first") == []
        await env.settled(sid)


async def test_redirect_and_end_of_document() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice", TWIML.format('<Redirect method="POST">next?step=2</Redirect><Say>never</Say>')
        )
        env.fake.answer(
            "/next", TWIML.format('<Pause length="2"/><Redirect method="GET">/menu/again?x=1</Redirect>')
        )
        env.fake.answer("/menu/again", TWIML.format("<Pause/>"))
        sid = await env.call({})
        state = await env.settled(sid)
        (nxt,) = env.fake.at("/next")
        assert nxt.url.endswith("/next?step=2")
        (again,) = env.fake.at("/menu/again")
        assert again.method == "GET"
        assert again.params["x"] == "1" and again.params["CallSid"] == sid
        assert events(state, "say") == []
        assert state["status"] == "completed"


async def test_time_scale_makes_long_calls_fast() -> None:
    scale = 0.0005
    async with sandbox_env(time_scale=scale) as env:
        env.fake.answer("/voice", TWIML.format('<Pause length="600"/>'))
        started = time.monotonic()
        state = await env.settled(await env.call({}), timeout=60)
        elapsed = time.monotonic() - started
        assert elapsed < 60  # ten simulated minutes; at real pace this would take 600 s
        # Simulated seconds: the pause's, and never more than the real time taken, scaled.
        assert 595 <= state["duration"] <= elapsed / scale + 1
        completed = env.fake.at("/status")[-1].params
        assert int(completed["CallDuration"]) == state["duration"]
        assert int(completed["Duration"]) == -(-state["duration"] // 60)  # billed minutes


async def test_hangup_after_seconds() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", TWIML.format('<Play loop="0">https://example.invalid/music.mp3</Play>'))
        state = await env.settled(await env.call({"hangup_after_seconds": 20}))
        assert state["status"] == "completed"
        assert 10 <= state["duration"] <= 21  # the timer starts before the call is answered
        assert [e["by"] for e in events(state, "hangup")] == ["caller"]


async def test_failing_webhooks_are_logged_and_the_call_hangs_up() -> None:
    async with sandbox_env() as env:
        env.fake.status["/voice"] = 500
        sid = await env.call({})
        state = await env.settled(sid)
        assert state["status"] == "failed"
        assert [e["code"] for e in events(state, "error")] == [11200]
        _, debugger = await env.sim("GET", "debugger")
        assert debugger["errors"][0]["code"] == 11200 and debugger["errors"][0]["sid"] == sid

        del env.fake.status["/voice"]
        env.fake.answer("/voice", "<html>not twiml</html>")
        state = await env.settled(await env.call({}))
        assert [e["code"] for e in events(state, "error")] == [12100]

        env.fake.answer("/voice", TWIML.format("<Say>hi</Say><Redirect>http://127.0.0.1:9/closed</Redirect>"))
        state = await env.settled(await env.call({}))
        assert state["status"] == "completed"
        assert [e["code"] for e in events(state, "error")] == [11200]


async def test_unknown_number_and_bad_body_are_400() -> None:
    async with sandbox_env() as env:
        status, answer = await env.sim("POST", "calls", {"from": CALLER, "to": "+14155550199"})
        assert status == 400 and "not a sandbox number" in answer["error"]
        status, answer = await env.sim("POST", "calls", {"to": NUMBER})
        assert status == 400 and "'from'" in answer["error"]
        status, _ = await env.sim("GET", "calls/CA00000000000000000000000000000000")
        assert status == 404


async def test_redirecting_the_agent_leg_splits_it_from_the_caller() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", DIAL_ALICE)
        env.fake.answer("/dial-done", TWIML.format("<Say>Back with the menu</Say>"))
        env.fake.answer("/agent-menu", TWIML.format("<Say>Agent only</Say><Hangup/>"))
        sid = await env.call({})
        leg = await _answer_alice(env, sid)
        status, _ = await env.rest("POST", f"Calls/{leg}.json", data={"Url": env.fake.url("/agent-menu")})
        assert status == 200
        caller = await env.settled(sid)
        agent = await env.settled(leg)
        assert env.fake.at("/dial-done")[0].params["DialCallStatus"] == "completed"
        assert [e["text"] for e in events(caller, "say")][-1] == "Back with the menu"
        assert [e["text"] for e in events(agent, "say")] == ["Agent only"]
        assert env.fake.at("/agent-menu")[0].params["ParentCallSid"] == sid


async def test_clients_can_answer_by_themselves() -> None:
    async with sandbox_env(client_auto_answer_seconds=2.0) as env:
        env.fake.answer(
            "/voice", TWIML.format('<Dial action="/dial-done" timeLimit="10"><Client>alice</Client></Dial>')
        )
        state = await env.settled(await env.call({}))
        (action,) = env.fake.at("/dial-done")
        assert action.params["DialCallStatus"] == "completed"
        assert 9 <= int(action.params["DialCallDuration"]) <= 15  # timeLimit ended the bridge
        assert events(state, "dial time limit reached")


async def test_cleanup_cancels_live_calls() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", DIAL_ALICE)
        await env.call({})
        await env.ringing("alice")
        env.fake.answer("/voice", TWIML.format('<Pause length="6000"/>'))
        sid = await env.call({})
        await env.until(sid, lambda s: s["status"] == "in-progress")
        sandbox = env.sandbox
        assert sandbox.busy_tasks >= 2
    assert sandbox.busy_tasks == 0
