"""Fidelity proof: the sandbox driven by the official twilio-python client answers every REST call with
a body that Twilio's published OpenAPI description (twilio-oai, tests/fixtures/twilio_oai/) allows,
and sends its webhooks with the parameters Twilio documents, signed as Twilio signs them."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from contact_center.sandbox import CallOutcomes, MessageOutcomes
from tests.support.sandbox_harness import CALLER, NUMBER, SID, TOKEN, TWIML, Env, sandbox_env, twilio_client
from tests.support.twilio_oai import mismatches, source
from tests.support.waiting import until

SERVICE = "MG" + "0123456789abcdef" * 2
DELIVERED = MessageOutcomes(delivered=1, undelivered=0, failed=0)
CALL = "Calls/{Sid}.json"
MESSAGE = "Messages/{Sid}.json"

# Parameters Twilio documents for each webhook (twilio.com/docs/usage/webhooks/voice-webhooks,
# .../messaging/guides/webhook-request, .../voice/api/call-resource#statuscallback).
CALL_PARAMS = {
    "AccountSid",
    "ApiVersion",
    "CallSid",
    "CallStatus",
    "Called",
    "Caller",
    "Direction",
    "From",
    "To",
}
PHONE_LOCATION = {
    f"{who}{what}"
    for who in ("From", "To", "Caller", "Called")
    for what in ("City", "State", "Zip", "Country")
}
CALL_STATUS_PARAMS = {"CallbackSource", "SequenceNumber", "Timestamp"}
CALL_COMPLETED_PARAMS = {"CallDuration", "Duration", "SipResponseCode"}
INBOUND_SMS_PARAMS = {
    "AccountSid",
    "ApiVersion",
    "Body",
    "From",
    "To",
    "MessageSid",
    "SmsMessageSid",
    "SmsSid",
    "SmsStatus",
    "NumMedia",
    "NumSegments",
} | {f"{who}{what}" for who in ("From", "To") for what in ("City", "State", "Zip", "Country")}
# Each verb's action (and callback) parameters, on top of the call's (twilio.com/docs/voice/twiml/...).
VERB_PARAMS = {
    "/gathered": {"Digits"},
    "/recorded": {"RecordingUrl", "RecordingSid", "RecordingDuration", "Digits"},
    "/recording-status": {
        "AccountSid",
        "CallSid",
        "RecordingSid",
        "RecordingUrl",
        "RecordingStatus",
        "RecordingDuration",
        "RecordingChannels",
        "RecordingSource",
        "RecordingStartTime",
    },
    "/dialed": {"DialCallStatus", "DialCallSid", "DialCallDuration", "DialBridged"},
    "/hold": {"QueuePosition", "QueueSid", "QueueTime", "AvgQueueTime", "CurrentQueueSize", "MaxQueueSize"},
    "/queue-done": {"QueueResult", "QueueSid", "QueueTime"},
}
SMS_STATUS_PARAMS = {
    "AccountSid",
    "ApiVersion",
    "From",
    "To",
    "MessageSid",
    "MessageStatus",
    "SmsSid",
    "SmsStatus",
}


class KeepingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio-python's HTTP client, keeping the last response (status and raw body) it received."""

    last: Response | None = None

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.last = super().request(*args, **kwargs)
        return self.last


class Recorder:
    """Runs the official client in a thread and checks the raw body of each response it got."""

    def __init__(self, env: Env) -> None:
        self.http = KeepingHttpClient()
        self.client: Client = twilio_client(env, self.http)
        self.problems: list[str] = []

    async def __call__(
        self, what: str, path: str, method: str, status: int, act: Callable[[Client], Any]
    ) -> Any:
        result = await asyncio.to_thread(act, self.client)
        response = self.http.last
        assert response is not None
        assert response.status_code == status, (what, response.status_code, response.text)
        if status == 204:
            assert response.text == "", (what, response.text)
        else:
            body = json.loads(response.text)
            self.problems += [f"{what}: {line}" for line in mismatches(body, path, method, status)]
        return result

    def check(self) -> None:
        assert not self.problems, f"responses that break {source()}:\n" + "\n".join(self.problems)


async def test_calls_answer_as_the_published_description_says() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/talk", TWIML.format('<Pause length="600"/>'))
        env.fake.answer("/moved", TWIML.format('<Pause length="600"/>'))
        rest = Recorder(env)
        url = env.fake.url("/talk")
        call = await rest(
            "calls.create",
            "Calls.json",
            "post",
            201,
            lambda c: c.calls.create(to=CALLER, from_=NUMBER, url=url),
        )
        await until(lambda: env.sandbox.calls[call.sid].status == "in-progress", what="answered")
        await rest("calls.fetch", CALL, "get", 200, lambda c: c.calls(call.sid).fetch())
        await rest("calls.list", "Calls.json", "get", 200, lambda c: c.calls.list(page_size=2))
        await rest("calls.list page", "Calls.json", "get", 200, lambda c: c.calls.page(page_size=1))
        moved = env.fake.url("/moved")
        await rest("calls.update url", CALL, "post", 200, lambda c: c.calls(call.sid).update(url=moved))
        await env.fake.wait_for("/moved")
        ended = await rest(
            "calls.update completed",
            CALL,
            "post",
            200,
            lambda c: c.calls(call.sid).update(status="completed"),
        )
        assert ended.status == "completed"
        await until(lambda: env.sandbox.calls[call.sid].is_final, what="over")
        await rest("calls.fetch over", CALL, "get", 200, lambda c: c.calls(call.sid).fetch())
        await rest("calls.list over", "Calls.json", "get", 200, lambda c: c.calls.list(status="completed"))
        assert await rest("calls.delete", CALL, "delete", 204, lambda c: c.calls(call.sid).delete()) is True
        rest.check()


async def test_calls_that_never_connect_answer_as_the_published_description_says() -> None:
    slow = CallOutcomes(human=1, machine=0, busy=0, no_answer=0, failed=0, ring_seconds=(600, 600))
    async with sandbox_env(outcomes=slow) as env:
        rest = Recorder(env)
        hangup = "<Response><Hangup/></Response>"
        ringing = await rest(
            "calls.create twiml",
            "Calls.json",
            "post",
            201,
            lambda c: c.calls.create(to=CALLER, from_=NUMBER, twiml=hangup),
        )
        await until(lambda: env.sandbox.calls[ringing.sid].status == "ringing", what="ringing")
        await rest("calls.fetch ringing", CALL, "get", 200, lambda c: c.calls(ringing.sid).fetch())
        await rest(
            "calls.update twiml", CALL, "post", 200, lambda c: c.calls(ringing.sid).update(twiml=hangup)
        )
        canceled = await rest(
            "calls.update canceled",
            CALL,
            "post",
            200,
            lambda c: c.calls(ringing.sid).update(status="canceled"),
        )
        assert canceled.status == "canceled"
        for number, outcome in (
            ("+14155550101", "busy"),
            ("+14155550102", "no-answer"),
            ("+14155550103", "failed"),
        ):
            status, answer = await env.sim("POST", "calls/outcomes", {"to": number, "outcome": outcome})
            assert status == 200, answer
            call = await rest(
                f"calls.create {outcome}",
                "Calls.json",
                "post",
                201,
                functools.partial(_dial, to=number, twiml=hangup),
            )
            sid = str(call.sid)
            await asyncio.wait_for(env.sandbox.calls[sid].ended.wait(), 5)
            over = await rest(
                f"calls.fetch {outcome}", CALL, "get", 200, functools.partial(_fetch_call, sid=sid)
            )
            assert over.status == outcome
        await rest("calls.list all", "Calls.json", "get", 200, lambda c: c.calls.list())
        rest.check()


def _dial(client: Client, to: str, twiml: str) -> Any:
    return client.calls.create(to=to, from_=NUMBER, twiml=twiml)


def _fetch_call(client: Client, sid: str) -> Any:
    return client.calls(sid).fetch()


async def test_texts_through_a_service_and_failed_texts_answer_as_the_published_description_says() -> None:
    failing = MessageOutcomes(delivered=0, undelivered=1, failed=0)
    async with sandbox_env(messages=failing) as env:
        rest = Recorder(env)
        accepted = await rest(
            "messages.create service",
            "Messages.json",
            "post",
            201,
            lambda c: c.messages.create(to=CALLER, body="Hi", messaging_service_sid=SERVICE),
        )
        assert accepted.status == "accepted"
        await until(lambda: env.sandbox.messages[accepted.sid].status == "undelivered", what="undelivered")
        undelivered = await rest(
            "messages.fetch undelivered", MESSAGE, "get", 200, lambda c: c.messages(accepted.sid).fetch()
        )
        assert isinstance(undelivered.error_code, int) and undelivered.error_message
        await rest("messages.list service", "Messages.json", "get", 200, lambda c: c.messages.list())
        rest.check()


async def test_messages_answer_as_the_published_description_says() -> None:
    async with sandbox_env(messages=DELIVERED) as env:
        rest = Recorder(env)
        callback = env.fake.url("/message-status")
        message = await rest(
            "messages.create",
            "Messages.json",
            "post",
            201,
            lambda c: c.messages.create(to=CALLER, from_=NUMBER, body="Hi", status_callback=callback),
        )
        await rest("messages.fetch", MESSAGE, "get", 200, lambda c: c.messages(message.sid).fetch())
        await env.fake.wait_for("/message-status", 2)  # sent, delivered: none for the first status
        await rest("messages.fetch delivered", MESSAGE, "get", 200, lambda c: c.messages(message.sid).fetch())
        _, received = await env.sim("POST", "sms", {"from": CALLER, "to": NUMBER, "body": "Hello"})
        await rest("messages.list", "Messages.json", "get", 200, lambda c: c.messages.list(page_size=5))
        await rest("messages.list to", "Messages.json", "get", 200, lambda c: c.messages.page(to=NUMBER))
        redacted = await rest(
            "messages.update redaction",
            MESSAGE,
            "post",
            200,
            lambda c: c.messages(message.sid).update(body=""),
        )
        assert redacted.body == ""
        await rest("messages.delete", MESSAGE, "delete", 204, lambda c: c.messages(message.sid).delete())
        inbound = received["message_sid"]
        await rest("messages.fetch inbound", MESSAGE, "get", 200, lambda c: c.messages(inbound).fetch())
        rest.check()


async def test_recordings_answer_as_the_published_description_says() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/voice", TWIML.format('<Record action="/recorded" maxLength="30"/>'))
        env.fake.answer("/recorded", TWIML.format("<Hangup/>"))
        sid = await env.call({"record_seconds": 3})
        await env.settled(sid)
        (recorded,) = env.fake.at("/recorded")
        recording = recorded.params["RecordingSid"]
        rest = Recorder(env)
        path = "Recordings/{Sid}.json"
        fetched = await rest("recordings.fetch", path, "get", 200, lambda c: c.recordings(recording).fetch())
        assert fetched.call_sid == sid
        listed = await rest("recordings.list", "Recordings.json", "get", 200, lambda c: c.recordings.list())
        assert [r.sid for r in listed] == [recording]
        by_call = await rest(
            "recordings.list call", "Recordings.json", "get", 200, lambda c: c.recordings.list(call_sid=sid)
        )
        assert [r.sid for r in by_call] == [recording]
        other = "CA" + "0" * 32
        none = await rest(
            "recordings.list none", "Recordings.json", "get", 200, lambda c: c.recordings.list(call_sid=other)
        )
        assert none == []
        await rest("recordings.delete", path, "delete", 204, lambda c: c.recordings(recording).delete())
        rest.check()


async def test_a_missing_resource_answers_twilios_error_body() -> None:
    async with sandbox_env() as env:
        rest = Recorder(env)
        missing = "CA" + "f" * 32
        with pytest.raises(TwilioRestException) as raised:
            await asyncio.to_thread(lambda: rest.client.calls(missing).fetch())
        assert raised.value.status == 404 and raised.value.code == 20404
        response = rest.http.last
        assert response is not None and response.status_code == 404
        _error_body(json.loads(response.text), 404, 20404)


async def test_refusals_answer_twilios_error_body() -> None:
    async with sandbox_env() as env:
        rest = Recorder(env)
        refusals: list[tuple[int, int, Callable[[], Any]]] = [
            (
                400,
                21211,
                lambda: rest.client.calls.create(to="nobody", from_=NUMBER, url="https://example.com/"),
            ),
            (400, 21205, lambda: rest.client.calls.create(to=CALLER, from_=NUMBER, url="not a url")),
            (404, 20404, lambda: rest.client.messages("SM" + "0" * 32).fetch()),
            (404, 20404, lambda: rest.client.recordings("RE" + "0" * 32).fetch()),
        ]
        for status, code, act in refusals:
            with pytest.raises(TwilioRestException) as raised:
                await asyncio.to_thread(act)
            assert (raised.value.status, raised.value.code) == (status, code)
            assert rest.http.last is not None
            _error_body(json.loads(rest.http.last.text), status, code)
        resp = await env.client.get(
            env.api("Calls.json"), headers={"Authorization": "Basic bm9ib2R5Om5vbmU="}
        )
        assert resp.status == 401
        _error_body(await resp.json(), 401, 20003)


def _error_body(body: Any, status: int, code: int) -> None:
    # The description gives Twilio's error body a schema only once, as one operation's 408.
    assert not mismatches(body, "Calls/{CallSid}/Recordings/{Sid}.json", "post", 408), body
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert (body["status"], body["code"]) == (status, code), body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}" and body["message"]


def _missing(params: dict[str, str], names: set[str]) -> set[str]:
    return names - set(params)


async def test_webhooks_carry_the_documented_parameters_and_twilios_signature() -> None:
    async with sandbox_env(messages=DELIVERED) as env:
        env.fake.answer("/voice", TWIML.format('<Pause length="1"/><Hangup/>'))
        sid = await env.call({})
        await env.settled(sid)
        (voice,) = env.fake.at("/voice")
        assert not _missing(voice.params, CALL_PARAMS | PHONE_LOCATION | {"CallToken"}), voice.params
        assert voice.params["CallSid"] == sid and voice.params["Direction"] == "inbound"

        client = twilio_client(env)
        status = env.fake.url("/call-status")
        events = ["initiated", "ringing", "answered", "completed"]
        call = await asyncio.to_thread(
            lambda: client.calls.create(
                to=CALLER,
                from_=NUMBER,
                twiml="<Response><Hangup/></Response>",
                status_callback=status,
                status_callback_event=events,
            )
        )
        callbacks = await env.fake.wait_for("/call-status", 4)
        for callback in callbacks:
            assert callback.params["CallSid"] == call.sid
            assert not _missing(callback.params, CALL_PARAMS | PHONE_LOCATION | CALL_STATUS_PARAMS), callback
        (completed,) = [c for c in callbacks if c.params["CallStatus"] == "completed"]
        assert not _missing(completed.params, CALL_COMPLETED_PARAMS), completed.params

        await env.sim("POST", "sms", {"from": CALLER, "to": NUMBER, "body": "Hello"})
        (sms,) = await env.fake.wait_for("/sms")
        assert not _missing(sms.params, INBOUND_SMS_PARAMS), sms.params
        await asyncio.to_thread(
            lambda: client.messages.create(
                to=CALLER, from_=NUMBER, body="Hi", status_callback=env.fake.url("/sms-status")
            )
        )
        for callback in await env.fake.wait_for("/sms-status", 2):
            assert not _missing(callback.params, SMS_STATUS_PARAMS), callback.params

        signed = [w for w in env.fake.received if w.valid]
        assert len(signed) == len(env.fake.received) >= 9
        assert all(w.headers.get("X-Twilio-Signature") for w in env.fake.received)
        assert {w.headers.get("User-Agent") for w in env.fake.received} == {"TwilioProxy/1.1"}
        assert SID and TOKEN  # the harness signs with TOKEN for SID's number; sandbox_env checks every one


async def test_verb_actions_carry_the_documented_parameters() -> None:
    async with sandbox_env() as env:
        callee = "+14155550109"
        await env.sim("POST", "calls/outcomes", {"to": callee, "outcome": "human"})
        env.fake.answer(
            "/voice", TWIML.format('<Gather action="/gathered" numDigits="1"><Say>Hi</Say></Gather>')
        )
        env.fake.answer(
            "/gathered",
            TWIML.format(
                '<Record action="/recorded" maxLength="30" recordingStatusCallback="/recording-status"/>'
            ),
        )
        env.fake.answer("/recorded", TWIML.format(f'<Dial action="/dialed" timeLimit="2">{callee}</Dial>'))
        env.fake.answer(
            "/dialed", TWIML.format('<Enqueue action="/queue-done" waitUrl="/hold">support</Enqueue>')
        )
        env.fake.answer("/hold", TWIML.format('<Pause length="600"/>'))
        sid = await env.call({"digits": "1", "record_seconds": 2})
        await env.fake.wait_for("/hold")
        await env.sim("POST", f"calls/{sid}/hangup", {})
        await env.settled(sid)
        await env.fake.wait_for("/recording-status")
        await env.fake.wait_for("/queue-done")
        for path, names in VERB_PARAMS.items():
            assert env.fake.at(path), path
            for hook in env.fake.at(path):
                expected = names if path == "/recording-status" else names | CALL_PARAMS | PHONE_LOCATION
                assert not _missing(hook.params, expected), (path, _missing(hook.params, expected))
                assert hook.params["CallSid"] == sid
