"""What the Twilio sandbox tests share: a fake service that records signed webhooks, and the sandbox.

``FakeService`` stands in for contact-center: it answers TwiML by path and checks
the ``X-Twilio-Signature`` of every webhook with twilio's own ``RequestValidator``;
``sandbox_env`` runs it and the sandbox on loopback test servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from contact_center.sandbox import SANDBOX, NumberConfig, Sandbox, SandboxConfig, create_sandbox_app

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "sandbox-test-token"
NUMBER = "+15005550006"
CALLER = "+14155550100"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response>{}</Response>'

Answer = str | Callable[[dict[str, str]], str]


@dataclass
class Webhook:
    path: str
    method: str
    url: str
    params: dict[str, str]
    valid: bool
    headers: dict[str, str]


class FakeService:
    """Answers TwiML by path (default: an empty ``<Response/>``) and records what it received."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.answers: dict[str, Answer] = {}
        self.status: dict[str, int] = {}
        self.received: list[Webhook] = []
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str, twiml: Answer) -> None:
        self.answers[path] = twiml

    async def _handle(self, request: web.Request) -> web.Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if request.method == "POST":
            form = await request.post()
            valid = bool(self.validator.validate(str(request.url), form, signature))
            params = {k: str(v) for k, v in form.items()}
        else:  # GET: Twilio signs the whole URL, parameters included, and nothing else
            valid = bool(self.validator.validate(str(request.url), {}, signature))
            params = dict(request.query)
        self.received.append(
            Webhook(request.path, request.method, str(request.url), params, valid, dict(request.headers))
        )
        if request.path in self.status:
            return web.Response(status=self.status[request.path], text="boom")
        answer = self.answers.get(request.path, TWIML.format(""))
        text = answer(params) if callable(answer) else answer
        return web.Response(text=text, content_type="text/xml")

    def at(self, path: str) -> list[Webhook]:
        return [w for w in self.received if w.path == path]

    async def wait_for(self, path: str, count: int = 1, timeout: float = 5.0) -> list[Webhook]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            if time.monotonic() > deadline:
                seen = [(w.path, w.params.get("CallStatus")) for w in self.received]
                raise AssertionError(f"{count} webhook(s) to {path} expected; received {seen}")
            await asyncio.sleep(0.005)
        return self.at(path)


@dataclass
class Env:
    fake: FakeService
    client: TestClient[Any, Any]
    sandbox: Sandbox
    config: SandboxConfig
    base_url: str = ""
    auth_header: dict[str, str] = field(
        default_factory=lambda: {"Authorization": aiohttp.encode_basic_auth(SID, TOKEN)}
    )

    def api(self, path: str) -> str:
        return f"/2010-04-01/Accounts/{SID}/{path}"

    async def rest(self, method: str, path: str, data: Any = None, **kwargs: Any) -> tuple[int, Any]:
        kwargs.setdefault("headers", self.auth_header)
        resp = await self.client.request(method, self.api(path), data=data, **kwargs)
        return resp.status, await resp.json()

    async def sim(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-Sandbox-Token": self.config.control_token}
        resp = await self.client.request(method, f"/sandbox/{path}", json=body, headers=headers)
        return resp.status, await resp.json()

    async def call(self, body: dict[str, Any]) -> str:
        status, answer = await self.sim("POST", "calls", {"from": CALLER, "to": NUMBER, **body})
        assert status == 201, answer
        return str(answer["call_sid"])

    async def state(self, sid: str) -> dict[str, Any]:
        status, answer = await self.sim("GET", f"calls/{sid}")
        assert status == 200, answer
        return dict(answer)

    async def until(self, sid: str, check: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state(sid)
            if check(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; call state: {state}")
            await asyncio.sleep(0.005)

    async def settled(self, sid: str, timeout: float = 5.0) -> dict[str, Any]:
        return dict(await self.until(sid, lambda s: s["settled"], timeout))

    async def ringing(self, identity: str, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            _, answer = await self.sim("GET", f"clients/{identity}/ringing")
            if answer["calls"] or time.monotonic() > deadline:
                return list(answer["calls"])
            await asyncio.sleep(0.005)


def twilio_client(env: Env, http: TwilioHttpClient | None = None) -> Client:
    """The official twilio-python client (synchronous: call it through ``asyncio.to_thread``)."""
    http = http or TwilioHttpClient()
    assert http.session is not None
    http.session.trust_env = False  # loopback only, whatever proxy the environment names
    client = Client(SID, TOKEN, http_client=http)
    client.api.base_url = env.base_url
    return client


def events(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in state["log"] if e["event"] == name]


@asynccontextmanager
async def sandbox_env(**overrides: Any) -> AsyncIterator[Env]:
    """The fake service and a sandbox whose number +15005550006 points at it (/voice, /status, /sms)."""
    fake = FakeService(TOKEN)
    async with TestServer(fake.app) as fake_server:
        fake.base_url = str(fake_server.make_url("")).rstrip("/")
        number = NumberConfig(
            voice_url=fake.url("/voice"), voice_status_callback=fake.url("/status"), sms_url=fake.url("/sms")
        )
        config = SandboxConfig(
            account_sid=SID,
            auth_token=TOKEN,
            numbers={NUMBER: number},
            time_scale=0.01,
            seed=7,
            webhook_timeout=10.0,  # loopback answers in milliseconds; a loaded CI machine may stall a second or two
            client_voice_url=fake.url("/client"),
        )
        config = dataclasses.replace(config, **overrides)
        app = create_sandbox_app(config)
        async with TestClient(TestServer(app)) as client:
            env = Env(fake, client, app[SANDBOX], config, str(client.make_url("")).rstrip("/"))
            yield env
        invalid = [w for w in fake.received if not w.valid]
        assert not invalid, f"webhooks with a bad X-Twilio-Signature: {invalid}"
