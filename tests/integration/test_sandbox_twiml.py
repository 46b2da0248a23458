"""What the sandbox does with an inbound call's TwiML that has nothing to do or is not valid TwiML,
as Twilio does: any answer but ``<Reject>`` picks the call up; a document that is not XML (12100)
or breaks TwiML's schema (12200) runs none of its verbs, is recorded in the debugger, and the call
ends."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.sandbox_harness import TWIML, events, sandbox_env, twilio_client


async def test_an_empty_response_picks_the_call_up_then_ends_it_completed() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", TWIML.format(""))
        sid = await env.call({})
        state = await env.settled(sid)
        assert [e["status"] for e in events(state, "status")] == ["initiated", "ringing", "in-progress"]
        assert state["status"] == "completed"
        (callback,) = await env.fake.wait_for("/status")
        assert callback.params["CallStatus"] == "completed" and callback.params["CallDuration"] == "0"
        call = await asyncio.to_thread(lambda: twilio_client(env).calls(sid).fetch())
        assert call.status == "completed" and call.duration == "0" and call.start_time is not None


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("<html>not twiml</html>", 12100),
        ("<Response><Say>unclosed</Response>", 12100),
        (TWIML.format("<Say>Hello</Say><say>lowercase</say>"), 12200),
        (TWIML.format("<Say>Hello</Say><Shout>unknown</Shout>"), 12200),
        (TWIML.format("<Say>Hello</Say><Gather><Dial>+14155550111</Dial></Gather>"), 12200),
        (TWIML.format("<Say>Hello</Say><Dial><Say>not a noun</Say></Dial>"), 12200),
        (TWIML.format("<Say>Hello</Say><Hangup><Say>no nouns</Say></Hangup>"), 12200),
    ],
)
async def test_malformed_twiml_is_recorded_runs_nothing_and_ends_the_call(document: str, code: int) -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", document)
        sid = await env.call({})
        state = await env.settled(sid)
        assert [e["code"] for e in events(state, "error")] == [code]
        assert not events(state, "say")  # nothing of the document ran
        assert state["status"] == "failed"  # never picked up
        _, debugger = await env.sim("GET", "debugger")
        assert [(e["code"], e["sid"]) for e in debugger["errors"]] == [(code, sid)]


async def test_valid_twiml_with_ssml_and_nouns_passes_the_schema() -> None:
    async with sandbox_env() as env:
        env.fake.answer(
            "/voice",
            TWIML.format(
                '<Say voice="Polly.Joanna">Hi <break time="1s"/><emphasis>there</emphasis></Say>'
                '<Gather numDigits="1" timeout="1"><Say>Press</Say><Play>https://example.invalid/a.mp3</Play>'
                '<Pause length="1"/></Gather><Hangup/>'
            ),
        )
        state = await env.settled(await env.call({}))
        assert not events(state, "error") and state["status"] == "completed"
        _, debugger = await env.sim("GET", "debugger")
        assert debugger["errors"] == []
