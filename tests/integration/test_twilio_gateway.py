"""The Twilio gateway over HTTP: against the sandbox, and against REST doubles and real loopback
sockets that answer 429, hang, refuse or never accept the connection, fail the TLS handshake, reset
after reading the request or answer 5xx, to prove what is retried (never sent), what is
unconfirmed (may have been sent) and what is refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, encode_basic_auth, web
from aiohttp.test_utils import TestServer

from channels.twilio.gateway import TwilioGateway
from contact_center.sandbox import SandboxConfig, create_sandbox_app
from crm_core.errors import GatewayError
from crm_core.rules.call_status import TERMINAL
from crm_core.voice import CallRecord
from tests.support.waiting import eventually, free_port

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
    assert flaky.requests == 1 and error.value.retryable is False and error.value.unconfirmed is True


async def _send_to(base_url: str, **kwargs: Any) -> str:
    gateway = TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=base_url, **kwargs)
    try:
        return await gateway.send_sms(to="+12025550143", from_="+15005550006", body="Hello")
    finally:
        await gateway.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A listening port whose accept queue is full and never drained: a connect there hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    queued = []
    try:
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            queued.append(client)
        yield port
    finally:
        for client in queued:
            client.close()
        server.close()


async def test_a_refused_connection_was_not_sent_and_may_be_sent_again() -> None:
    with pytest.raises(GatewayError, match="could not be reached") as error:
        await _send_to(f"http://127.0.0.1:{free_port()}")
    assert (error.value.retryable, error.value.unconfirmed) == (True, False)


async def test_a_name_that_does_not_resolve_was_not_sent() -> None:
    with pytest.raises(GatewayError, match="could not be reached") as error:
        await _send_to("http://twilio-gateway-test.invalid")
    assert (error.value.retryable, error.value.unconfirmed) == (True, False)


async def test_no_connection_within_the_connect_timeout_was_not_sent() -> None:
    with full_backlog() as port, pytest.raises(GatewayError) as error:
        await _send_to(f"http://127.0.0.1:{port}", timeout=5.0, connect_timeout=0.3)
    assert (error.value.retryable, error.value.unconfirmed) == (True, False)
    assert "ConnectionTimeoutError" in str(error.value)


async def test_a_failed_tls_handshake_was_not_sent() -> None:
    """https to a server that speaks plain HTTP: the handshake fails before any request byte."""
    requests: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(text="plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        with pytest.raises(GatewayError, match="could not be reached") as error:
            await _send_to(f"https://127.0.0.1:{server.port}")
    assert (error.value.retryable, error.value.unconfirmed) == (True, False)
    assert requests == []


async def _raw_server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Any:
    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head + await reader.readexactly(length)


async def test_a_connection_lost_after_sending_is_unconfirmed() -> None:
    received: list[bytes] = []

    async def reset_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await _read_request(reader))
        writer.transport.abort()  # RST, no answer

    server = await _raw_server(reset_after_reading)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(GatewayError, match="no answer") as error:
            await _send_to(f"http://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()
    assert len(received) == 1 and b"Body=Hello" in received[0]
    assert (error.value.retryable, error.value.unconfirmed) == (False, True)


async def test_a_5xx_without_a_body_is_unconfirmed() -> None:
    async def broken(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", broken)
    async with TestServer(app, host="127.0.0.1") as server:
        with pytest.raises(GatewayError) as error:
            await _send_to(str(server.make_url("")))
    assert (error.value.status, error.value.retryable, error.value.unconfirmed) == (502, False, True)


async def test_a_4xx_is_refused() -> None:
    config = SandboxConfig(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.001, seed=7)
    async with TestServer(create_sandbox_app(config)) as server:
        gateway = TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=str(server.make_url("")))
        try:
            with pytest.raises(GatewayError) as error:
                await gateway.send_sms(to="not a number", from_="+15005550006", body="x")
        finally:
            await gateway.close()
    assert (error.value.code, error.value.retryable, error.value.unconfirmed) == (21211, False, False)


async def test_texts_are_found_at_the_gateway_by_recipient_sender_body_and_time() -> None:
    config = SandboxConfig(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.001, seed=7)
    async with TestServer(create_sandbox_app(config)) as server:
        gateway = TwilioGateway(account_sid=ACCOUNT, auth_token=TOKEN, base_url=str(server.make_url("")))
        try:
            before = datetime.now(UTC) - timedelta(seconds=5)
            first = await gateway.send_sms(to="+12025550143", from_="+15005550006", body="Hello")
            await gateway.send_sms(to="+12025550143", from_="+15005550006", body="Other")
            await gateway.send_sms(to="+12025550199", from_="+15005550006", body="Hello")
            second = await gateway.send_sms(to="+12025550143", from_="+15005550006", body="Hello")
            found = await gateway.find_sms(
                to="+12025550143", from_="+15005550006", body="Hello", created_after=before
            )
            later = await gateway.find_sms(
                to="+12025550143",
                from_="+15005550006",
                body="Hello",
                created_after=datetime.now(UTC) + timedelta(minutes=5),
            )
        finally:
            await gateway.close()
    assert [f.message_sid for f in found] == [first, second]
    assert all(f.status for f in found) and later == []


async def test_a_call_is_fetched_as_twilio_holds_it_and_a_call_that_is_over_cannot_be_redirected() -> None:
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

            async def ended() -> CallRecord | None:
                record = await gateway.fetch_call(sid)
                return record if record is not None and record.status in TERMINAL else None

            record = await eventually(ended, what="the placed call ends")
            assert record.call_sid == sid and record.duration_seconds is not None
            assert record.end_time is not None and record.end_time.tzinfo is not None
            assert await gateway.fetch_call("CA" + "0" * 32) is None  # unknown to Twilio
            with pytest.raises(GatewayError) as over:
                await gateway.redirect_call(sid, "http://127.0.0.1:9/again")
            assert (over.value.code, over.value.status) == (21220, 400)
        finally:
            await gateway.close()
