"""The sandbox's REST API: Basic auth, Twilio's shapes and error codes, messages and opt-outs,
and the official twilio client talking to it."""

from __future__ import annotations

import asyncio
import re
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from contact_center.sandbox import MessageOutcomes, SandboxConfig, create_sandbox_app
from tests.support.sandbox_harness import CALLER, NUMBER, SID, TOKEN, TWIML, Env, sandbox_env

HANGUP = TWIML.format("<Hangup/>")


def _is_error(body: dict[str, Any], code: int, status: int) -> None:
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    assert body["message"]


async def test_basic_auth_and_account_are_checked_like_twilio() -> None:
    async with sandbox_env() as env:
        for headers in (
            {},
            {"Authorization": aiohttp.encode_basic_auth(SID, "wrong")},
            {"Authorization": "Bearer " + TOKEN},
            {"Authorization": "Basic !!!"},
        ):
            resp = await env.client.get(env.api("Calls.json"), headers=headers)
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
            _is_error(await resp.json(), 20003, 401)
        other = "AC" + "f" * 32
        resp = await env.client.get(f"/2010-04-01/Accounts/{other}/Calls.json", headers=env.auth_header)
        assert resp.status == 404
        _is_error(await resp.json(), 20404, 404)
        status, body = await env.rest("GET", "Calls/CA0123.json")
        assert status == 404
        _is_error(body, 20404, 404)
        status, body = await env.rest("GET", "Nothing.json")
        assert status == 404
        _is_error(body, 20404, 404)


async def test_call_create_errors() -> None:
    async with sandbox_env() as env:
        cases = [
            ({"From": NUMBER, "Url": "http://x/"}, 21201),
            ({"To": CALLER, "Url": "http://x/"}, 21213),
            ({"To": "+1415", "From": NUMBER, "Url": "http://x/"}, 21211),
            ({"To": "+15005550001", "From": NUMBER, "Url": "http://x/"}, 21211),
            ({"To": CALLER, "From": NUMBER}, 21205),
            ({"To": CALLER, "From": NUMBER, "Url": "not-a-url"}, 21205),
            ({"To": CALLER, "From": NUMBER, "Url": "http://x/", "StatusCallbackEvent": "bogus"}, 21626),
        ]
        for form, code in cases:
            status, body = await env.rest("POST", "Calls.json", data=form)
            assert status == 400, (form, body)
            _is_error(body, code, 400)


async def test_call_create_fetch_list_and_hang_up() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/answered", TWIML.format('<Pause length="600"/>'))
        status, call = await env.rest(
            "POST",
            "Calls.json",
            data={"To": CALLER, "From": NUMBER, "Url": env.fake.url("/answered")},
        )
        assert status == 201
        assert re.match(r"^CA[0-9a-f]{32}$", call["sid"])
        assert call["status"] == "queued"
        assert call["direction"] == "outbound-api"
        assert call["account_sid"] == SID and call["to"] == CALLER and call["from"] == NUMBER
        assert call["uri"] == f"/2010-04-01/Accounts/{SID}/Calls/{call['sid']}.json"
        assert call["price"] is None and call["api_version"] == "2010-04-01"
        assert parsedate_to_datetime(call["date_created"]).tzinfo is not None
        status, fetched = await env.rest("GET", f"Calls/{call['sid']}.json")
        assert status == 200 and fetched["sid"] == call["sid"]
        status, page = await env.rest("GET", "Calls.json?PageSize=1")
        assert status == 200 and [c["sid"] for c in page["calls"]] == [call["sid"]]
        assert page["page_size"] == 1 and page["next_page_uri"] is None


async def test_message_create_fetch_and_delivery_callbacks() -> None:
    async with sandbox_env(messages=MessageOutcomes(delivered=1, undelivered=0, failed=0)) as env:
        status, message = await env.rest(
            "POST",
            "Messages.json",
            data={
                "To": CALLER,
                "From": NUMBER,
                "Body": "Hello",
                "StatusCallback": env.fake.url("/sms-status"),
            },
        )
        assert status == 201
        assert re.match(r"^SM[0-9a-f]{32}$", message["sid"])
        assert message["status"] == "queued" and message["direction"] == "outbound-api"
        assert message["body"] == "Hello" and message["num_segments"] == "1" and message["num_media"] == "0"
        assert message["error_code"] is None
        callbacks = await env.fake.wait_for("/sms-status", 2)
        assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
        assert all(c.params["MessageSid"] == message["sid"] == c.params["SmsSid"] for c in callbacks)
        assert "ErrorCode" not in callbacks[-1].params
        status, fetched = await env.rest("GET", f"Messages/{message['sid']}.json")
        assert status == 200 and fetched["status"] == "delivered" and fetched["date_sent"]
        status, page = await env.rest("GET", f"Messages.json?To={CALLER.replace('+', '%2B')}")
        assert [m["sid"] for m in page["messages"]] == [message["sid"]]
        # A later text's callbacks have all arrived: a repeated callback of the first would have too.
        status, _ = await env.rest(
            "POST",
            "Messages.json",
            data={"To": CALLER, "From": NUMBER, "Body": "Later", "StatusCallback": env.fake.url("/later")},
        )
        assert status == 201
        await env.fake.wait_for("/later", 2)
        assert len(env.fake.at("/sms-status")) == 2  # each status once


async def test_undelivered_with_error_code_and_out_of_order_callbacks() -> None:
    outcomes = MessageOutcomes(delivered=0, undelivered=1, failed=0, out_of_order=True)
    async with sandbox_env(messages=outcomes) as env:
        _, message = await env.rest(
            "POST",
            "Messages.json",
            data={"To": CALLER, "From": NUMBER, "Body": "Hi", "StatusCallback": env.fake.url("/sms-status")},
        )
        callbacks = await env.fake.wait_for("/sms-status", 2)
        assert [c.params["MessageStatus"] for c in callbacks] == ["undelivered", "sent"]
        assert callbacks[0].params["ErrorCode"] in {"30003", "30005", "30006", "30007"}
        _, fetched = await env.rest("GET", f"Messages/{message['sid']}.json")
        assert fetched["status"] == "undelivered" and fetched["error_code"] == int(
            callbacks[0].params["ErrorCode"]
        )


async def test_message_errors_invalid_to_and_stop_start() -> None:
    async with sandbox_env() as env:
        send = {"To": CALLER, "From": NUMBER, "Body": "Offer"}
        status, body = await env.rest("POST", "Messages.json", data={**send, "To": "+1415"})
        assert status == 400
        _is_error(body, 21211, 400)
        status, body = await env.rest("POST", "Messages.json", data={**send, "To": "+15005550004"})
        _is_error(body, 21610, 400)
        status, body = await env.rest("POST", "Messages.json", data={**send, "Body": ""})
        _is_error(body, 21602, 400)
        status, body = await env.rest("POST", "Messages.json", data={**send, "From": "+14155550111"})
        _is_error(body, 21606, 400)
        status, body = await env.rest("POST", "Messages.json", data={**send, "Body": "x" * 1601})
        _is_error(body, 21617, 400)

        status, inbound = await env.sim("POST", "sms", {"from": CALLER, "to": NUMBER, "body": " stop "})
        assert status == 201
        assert inbound["replies"][0]["body"].startswith("You have successfully been unsubscribed")
        (webhook,) = env.fake.at("/sms")
        assert webhook.params["OptOutType"] == "STOP" and webhook.params["Body"] == " stop "
        status, body = await env.rest("POST", "Messages.json", data=send)
        assert status == 400
        _is_error(body, 21610, 400)

        await env.sim("POST", "sms", {"from": CALLER, "to": NUMBER, "body": "START"})
        status, body = await env.rest("POST", "Messages.json", data=send)
        assert status == 201, body


async def test_inbound_sms_webhook_with_media_and_reply() -> None:
    async with sandbox_env() as env:
        env.fake.answer("/sms", '<Response><Message action="/reply-status">Got it</Message></Response>')
        status, answer = await env.sim(
            "POST",
            "sms",
            {"from": CALLER, "to": NUMBER, "body": "Photo", "media_urls": ["https://example.com/a.jpg"]},
        )
        assert status == 201
        (webhook,) = env.fake.at("/sms")
        params = webhook.params
        assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"] == answer["message_sid"]
        assert params["MessageSid"].startswith("MM")
        assert params["AccountSid"] == SID and params["SmsStatus"] == "received"
        assert params["NumMedia"] == "1" and params["MediaUrl0"] == "https://example.com/a.jpg"
        assert params["MediaContentType0"] == "image/jpeg"
        assert params["NumSegments"] == "1" and params["ApiVersion"] == "2010-04-01"
        assert "OptOutType" not in params
        (reply,) = answer["replies"]
        assert reply["body"] == "Got it" and reply["to"] == CALLER and reply["from"] == NUMBER
        callbacks = await env.fake.wait_for("/reply-status", 1)
        assert callbacks[0].params["MessageSid"] == reply["sid"]


async def _client_run(env: Env) -> None:
    """The official client, synchronous (requests) in a thread: create and fetch a call and a message."""
    env.fake.answer("/answered", TWIML.format('<Pause length="600"/>'))

    def use_client() -> tuple[Any, ...]:
        http = TwilioHttpClient()
        assert http.session is not None
        http.session.trust_env = False  # loopback only, whatever proxy the environment names
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = env.base_url
        call = client.calls.create(to=CALLER, from_=NUMBER, url=env.fake.url("/answered"))
        fetched = client.calls(call.sid).fetch()
        message = client.messages.create(to=CALLER, from_=NUMBER, body="Hello from twilio-python")
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to="+1415", from_=NUMBER, body="nope")
        ended = client.calls(call.sid).update(status="completed")
        listed = client.calls.list(limit=5)
        return call, fetched, message, info.value, ended, listed

    call, fetched, message, error, ended, listed = await asyncio.to_thread(use_client)
    assert call.sid.startswith("CA") and call.status == "queued" and call._from == NUMBER
    assert call.date_created is not None and call.direction == "outbound-api"
    assert fetched.sid == call.sid
    assert message.sid.startswith("SM") and message.body == "Hello from twilio-python"
    assert message.status == "queued" and message.from_ == NUMBER
    assert error.code == 21211 and error.status == 400
    assert ended.status in ("completed", "canceled")
    assert call.sid in [c.sid for c in listed]


async def test_official_twilio_client_sync() -> None:
    async with sandbox_env() as env:
        await _client_run(env)


@pytest.mark.filterwarnings("ignore:.*(BasicAuth|auth. parameter).*:DeprecationWarning")
async def test_official_twilio_client_async() -> None:
    async with sandbox_env() as env:
        http = AsyncTwilioHttpClient()
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = env.base_url
        try:
            call = await client.calls.create_async(to=CALLER, from_=NUMBER, twiml=HANGUP)
            message = await client.messages.create_async(to=CALLER, from_=NUMBER, body="async")
            fetched = await client.messages(message.sid).fetch_async()
        finally:
            await http.close()
        assert call.sid.startswith("CA") and fetched.sid == message.sid and fetched.body == "async"


async def test_mounted_under_the_service_prefix() -> None:
    """Mounted with add_subapp: REST and simulation under /twilio-sandbox, URLs carry the prefix."""
    config = SandboxConfig(account_sid=SID, auth_token=TOKEN, time_scale=0.01)
    parent = web.Application()
    parent.add_subapp("/twilio-sandbox", create_sandbox_app(config))
    async with TestClient(TestServer(parent)) as client:
        headers = {"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)}
        resp = await client.post(
            f"/twilio-sandbox/2010-04-01/Accounts/{SID}/Calls.json",
            data={"To": CALLER, "From": NUMBER, "Twiml": HANGUP},
            headers=headers,
        )
        assert resp.status == 201, await resp.text()
        resp = await client.get("/twilio-sandbox/sandbox", headers={"X-Sandbox-Token": config.control_token})
        index = await resp.json()
        assert index["rest_base_url"] == str(client.make_url("/twilio-sandbox"))
        resp = await client.get(f"/twilio-sandbox/2010-04-01/Accounts/{SID}/Calls.json")
        assert resp.status == 401
