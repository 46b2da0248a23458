"""The sandbox answers as Twilio does where the service depends on it, checked with the official
twilio-python client: texts through a Messaging Service, call and message resources, deletion and
redaction, and Twilio's error bodies."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest.api.v2010.account.call import CallInstance

from contact_center.sandbox import CallOutcomes, MessageOutcomes
from tests.support.sandbox_harness import CALLER, NUMBER, TWIML, sandbox_env, twilio_client
from tests.support.waiting import until

SERVICE = "MG" + "0123456789abcdef" * 2
DELIVERED = MessageOutcomes(delivered=1, undelivered=0, failed=0)
HANGUP = TWIML.format("<Hangup/>")


async def test_a_text_sent_through_a_messaging_service_starts_accepted() -> None:
    async with sandbox_env(messages=DELIVERED) as env:
        client = twilio_client(env)

        def send(path: str, **sender: str) -> str:
            callback = env.fake.url(path)
            message = client.messages.create(to=CALLER, body="Hi", status_callback=callback, **sender)
            assert message.messaging_service_sid == SERVICE
            return str(message.status)

        with_from = await asyncio.to_thread(send, "/with-from", from_=NUMBER, messaging_service_sid=SERVICE)
        alone = await asyncio.to_thread(send, "/alone", messaging_service_sid=SERVICE)
        assert with_from == alone == "accepted"
        for path in ("/with-from", "/alone"):
            callbacks = await env.fake.wait_for(path, 3)
            assert [c.params["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
            assert all(c.params["MessagingServiceSid"] == SERVICE for c in callbacks)
        assert {c.params["From"] for c in env.fake.at("/with-from")} == {NUMBER}


async def test_unanswered_calls_have_no_duration_and_every_call_starts_when_dialled() -> None:
    slow = CallOutcomes(human=1, machine=0, busy=0, no_answer=0, failed=0, ring_seconds=(600, 600))
    async with sandbox_env(outcomes=slow) as env:
        client = twilio_client(env)
        env.fake.answer("/talk", TWIML.format('<Pause length="1"/><Hangup/>'))

        def dial(to: str = CALLER, url: str = "/talk") -> CallInstance:
            return client.calls.create(to=to, from_=NUMBER, url=env.fake.url(url))

        def fetch(sid: str) -> CallInstance:
            return client.calls(sid).fetch()

        ringing = await asyncio.to_thread(dial)
        await until(lambda: env.sandbox.calls[ringing.sid].status == "ringing", what="ringing")
        now = await asyncio.to_thread(fetch, ringing.sid)
        assert now.status == "ringing" and now.start_time is not None and now.duration is None
        canceled = await asyncio.to_thread(lambda: client.calls(ringing.sid).update(status="canceled"))
        assert canceled.status == "canceled" and canceled.duration is None
        assert canceled.start_time is not None and canceled.end_time is not None

    unanswered = {
        "busy": dataclasses.replace(NOBODY, busy=1.0),
        "no-answer": dataclasses.replace(NOBODY, no_answer=1.0),
        "failed": dataclasses.replace(NOBODY, failed=1.0),
    }
    for status, outcomes in unanswered.items():
        ended = await _call_ending(outcomes)
        assert ended.status == status and ended.duration is None, status
        assert ended.start_time is not None, status
    done = await _call_ending(dataclasses.replace(NOBODY, human=1.0))
    assert done.status == "completed" and done.duration == "0" and done.start_time is not None


NOBODY = CallOutcomes(human=0, machine=0, busy=0, no_answer=0, failed=0)


async def _call_ending(outcomes: CallOutcomes) -> CallInstance:
    """A call placed with the official client whose callee behaves as ``outcomes`` says, once over."""
    async with sandbox_env(outcomes=dataclasses.replace(outcomes, ring_seconds=(1, 1))) as env:
        client = twilio_client(env)
        placed = await asyncio.to_thread(lambda: client.calls.create(to=CALLER, from_=NUMBER, twiml=HANGUP))
        await until(lambda: env.sandbox.calls[placed.sid].is_final, what="the call ends")
        return await asyncio.to_thread(lambda: client.calls(placed.sid).fetch())


async def test_calls_messages_and_recordings_are_deleted_and_bodies_redacted() -> None:
    async with sandbox_env(messages=DELIVERED) as env:
        client = twilio_client(env)
        env.fake.answer("/voice", TWIML.format('<Record maxLength="30"/><Pause length="600"/>'))
        live = await env.call({})
        await until(lambda: env.sandbox.recordings, what="a recording")
        (recording_sid,) = env.sandbox.recordings
        # A live call is not deleted; its recording is.
        with pytest.raises(TwilioRestException) as refused:
            await asyncio.to_thread(lambda: client.calls(live).delete())
        assert refused.value.status == 409 and refused.value.code == 20009
        assert await asyncio.to_thread(lambda: client.recordings(recording_sid).delete()) is True
        with pytest.raises(TwilioRestException) as gone:
            await asyncio.to_thread(lambda: client.recordings(recording_sid).fetch())
        assert gone.value.status == 404 and gone.value.code == 20404
        await env.sim("POST", f"calls/{live}/hangup", {})
        await env.settled(live)
        assert await asyncio.to_thread(lambda: client.calls(live).delete()) is True
        assert live not in env.sandbox.calls
        with pytest.raises(TwilioRestException) as gone:
            await asyncio.to_thread(lambda: client.calls(live).fetch())
        assert gone.value.status == 404 and gone.value.code == 20404

        sid = (
            await asyncio.to_thread(lambda: client.messages.create(to=CALLER, from_=NUMBER, body="PIN 1234"))
        ).sid
        with pytest.raises(TwilioRestException) as refused:  # not delivered yet
            await asyncio.to_thread(lambda: client.messages(sid).delete())
        assert refused.value.status == 409 and refused.value.code == 20009
        await until(lambda: env.sandbox.messages[sid].status == "delivered", what="delivered")
        redacted = await asyncio.to_thread(lambda: client.messages(sid).update(body=""))
        assert redacted.sid == sid and redacted.body == "" and redacted.status == "delivered"
        assert env.sandbox.messages[sid].body == ""
        assert await asyncio.to_thread(lambda: client.messages(sid).delete()) is True
        assert sid not in env.sandbox.messages


async def test_rest_errors_have_twilios_shape() -> None:
    async with sandbox_env() as env:
        for method, path in [
            ("PUT", "Calls.json"),
            ("DELETE", "Calls.json"),
            ("PATCH", f"Messages/SM{'0' * 32}.json"),
        ]:
            status, body = await env.rest(method, path)
            assert status == 405, (method, path)
            assert body == {
                "code": 20004,
                "message": "Method not allowed",
                "more_info": "https://www.twilio.com/docs/errors/20004",
                "status": 405,
            }
        status, body = await env.rest("DELETE", f"Calls/CA{'0' * 32}.json")
        assert status == 404 and body["code"] == 20404 and body["status"] == 404
        status, body = await env.rest("POST", f"Messages/SM{'0' * 32}.json", data={"Body": ""})
        assert status == 404 and body["code"] == 20404
