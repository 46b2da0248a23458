"""The Twilio gateway over HTTP: against the sandbox, and against a REST double that answers 429
or hangs, to prove what is retried and what is not."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientSession, encode_basic_auth, web
from aiohttp.test_utils import TestServer

from channels.twilio.gateway import TwilioGateway
from contact_center.sandbox import SandboxConfig, create_sandbox_app
from crm_core.errors import GatewayError

ACCOUNT = "AC" + "a" * 32
TOKEN = "gateway-test-token"


async def test_calls_and_messages_against_the_sandbox() -> None:
    config = SandboxConfig(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.001, seed=7)
    async with TestServer(create_sandbox_app(config)) as server:
        gateway = TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=str(server.make_url("")))
        try:
            sid = await gateway.place_call(
                to="+12025550143",
                from_="+15005550006",
                url="http://127.0.0.1:9/twiml",
                status_callback="http://127.0.0.1:9/status",
            )
            assert sid.startswith("CA") and len(sid) == 34
            message = await gateway.send_sms(
                to="+12025550143", from_="+15005550006", body="Your ticket #1042 is resolved"
            )
            assert message.startswith("SM")
            with pytest.raises(GatewayError) as refused:
                await gateway.send_sms(to="not a number", from_="+15005550006", body="x")
            assert (refused.value.code, refused.value.retryable) == (21211, False)
        finally:
            await gateway.close()
        wrong = TwilioGateway(account_sid=ACCOUNT, auth_token="wrong", base_url=str(server.make_url("")))
        try:
            with pytest.raises(GatewayError) as denied:
                await wrong.redirect_call("CA" + "0" * 32, "http://127.0.0.1:9/x")
            assert denied.value.status == 401
        finally:
            await wrong.close()


async def test_texts_go_through_the_configured_messaging_service() -> None:
    config = SandboxConfig(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.001, seed=7)
    service = "MG" + "b" * 32
    async with TestServer(create_sandbox_app(config)) as server:
        base = str(server.make_url(""))
        plain = TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=base)
        through = TwilioGateway(
            account_sid=ACCOUNT, auth_token=TOKEN, base_url=base, messaging_service_sid=service
        )
        try:
            sids = [
                await gateway.send_sms(to="+12025550143", from_="+15005550006", body="Hello")
                for gateway in (plain, through)
            ]
        finally:
            await plain.close()
            await through.close()
        url = server.make_url(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
        auth = {"Authorization": encode_basic_auth(ACCOUNT, TOKEN)}
        async with ClientSession(headers=auth) as http, http.get(url) as resp:
            listed = {m["sid"]: m for m in (await resp.json())["messages"]}
    sent = [listed[sid] for sid in sids]
    assert [m["messaging_service_sid"] for m in sent] == [None, service]
    assert {m["from"] for m in sent} == {"+15005550006"}  # the number chosen, in both cases


class FlakyTwilio:
    """Answers 429 (Twilio's 20429) a given number of times before succeeding, or never answers."""

    def __init__(self, busy_answers: int, hang: bool = False) -> None:
        self.busy_answers = busy_answers
        self.hang = hang
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.update)

    async def update(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.hang:
            await asyncio.sleep(30)
        if self.requests <= self.busy_answers:
            body = {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429}
            return web.json_response(body, status=429)
        return web.json_response({"sid": request.match_info["sid"], "status": "in-progress"})


async def _redirect(flaky: FlakyTwilio, **kwargs: Any) -> None:
    async with TestServer(flaky.app) as server:
        gateway = TwilioGateway(
            account_sid=ACCOUNT, auth_token=TOKEN, base_url=str(server.make_url("")), **kwargs
        )
        try:
            await gateway.redirect_call("CA" + "1" * 32, "http://127.0.0.1:9/connect")
        finally:
            await gateway.close()


async def test_too_many_requests_is_retried_with_backoff() -> None:
    flaky = FlakyTwilio(busy_answers=2)
    await _redirect(flaky)
    assert flaky.requests == 3


async def test_persistent_429_gives_up_and_says_it_is_safe_to_retry() -> None:
    flaky = FlakyTwilio(busy_answers=100)
    with pytest.raises(GatewayError) as error:
        await _redirect(flaky, max_attempts=2)
    assert flaky.requests == 2
    assert (error.value.code, error.value.retryable) == (20429, True)


async def test_a_request_without_answer_times_out_and_is_not_repeated() -> None:
    flaky = FlakyTwilio(busy_answers=0, hang=True)
    with pytest.raises(GatewayError, match="no answer") as error:
        await _redirect(flaky, timeout=0.3)
    assert flaky.requests == 1 and error.value.retryable is False
