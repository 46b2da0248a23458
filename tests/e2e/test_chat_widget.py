"""The chat widget in a real headless Chromium, against the service running on a loopback port.

A shop page served from another loopback origin (allowed) embeds the widget with one script tag;
an agent is on the agent socket and the REST API. A page of a third origin (not allowed) is
refused at the socket's handshake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.routing.presence import AgentState
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, ChatConversation, ChatVisitor, Ticket
from crm_core.types import Channel
from tests import browser_support
from tests.conftest import PASSWORD, Staff, isolated_settings

chromium = browser_support.chromium

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
TIMEOUT_MS = 10_000
PROBE_IMAGE = """() => new Promise((done) => {
  const probe = new Image();
  probe.onerror = () => done(true);
  probe.src = "x?probe";
})"""


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def _shop_page(service: str) -> web.Application:
    html = (
        "<!doctype html><html><head><meta charset=utf-8><title>Shop</title></head>"
        "<body><h1>Shop</h1>"
        f'<script src="{service}/chat/widget.js" data-title="Chat with us"></script>'
        "</body></html>"
    )

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    shop = web.Application()
    shop.router.add_get("/", page)
    return shop


class Agent_:
    """An agent signed in to the running service: REST with the session, events on /ws/agent."""

    def __init__(self, http: aiohttp.ClientSession, base: str, csrf: str, cookie: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"X-CSRF-Token": csrf, "Cookie": f"cc_session={cookie}"}
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.base + "/ws/agent", headers=self.headers)
        assert (await self.ws.receive_json(timeout=5))["type"] == "hello"

    async def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads((await self.ws.receive()).data)
                if frame["type"] == kind:
                    return frame  # type: ignore[no-any-return]

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.post(self.base + path, json=body or {}, headers=self.headers) as resp:
            assert resp.status in (200, 201), await resp.text()
            return await resp.json()


@dataclass
class Site:
    service: str
    shop: str
    foreign: str
    app: web.Application
    http: aiohttp.ClientSession
    agents: list[Agent_]

    async def available(self, agent: Agent) -> None:
        await self.app[RUNTIME].presence.set(agent.id, AgentState.AVAILABLE)

    async def agent(self, agent: Agent) -> Agent_:
        async with self.http.post(
            self.service + "/api/v1/auth/login", json={"login": agent.login, "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
            body = await resp.json()
            cookie = resp.cookies["cc_session"].value
        self.http.cookie_jar.clear()
        signed_in = Agent_(self.http, self.service, body["csrf_token"], cookie)
        await signed_in.connect()
        self.agents.append(signed_in)
        return signed_in


@pytest_asyncio.fixture(loop_scope="session")
async def site(settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff) -> AsyncIterator[Site]:
    shop_runner, shop = await _serve(web.Application())
    await shop_runner.cleanup()  # only to learn a free origin; served below once the service is up
    foreign_runner, foreign = await _serve(web.Application())
    await foreign_runner.cleanup()
    configured = isolated_settings(settings).with_overrides(
        webchat={"allowed_origins": [shop], "max_chats_per_agent": 1, "queue_poll_seconds": 0.2}
    )
    app = create_app(configured)
    service_runner, service = await _serve(app)
    runners = [service_runner]
    for origin in (shop, foreign):
        runner = web.AppRunner(_shop_page(service), shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(origin.rsplit(":", 1)[1])).start()
        runners.append(runner)
    async with aiohttp.ClientSession() as http:
        try:
            opened = Site(service, shop + "/", foreign + "/", app, http, [])
            yield opened
        finally:
            for agent in opened.agents:
                if agent.ws is not None:
                    await agent.ws.close()
            for runner in reversed(runners):
                await runner.cleanup()


async def visitor_page(chromium: Any, url: str) -> Any:
    context = await chromium.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto(url)
    return page


async def start_chat(page: Any, **prechat: str) -> None:
    await page.locator(".cc-launcher").click()
    for name, value in prechat.items():
        await page.locator(f".cc-prechat input[name={name}]").fill(value)
    await page.locator(".cc-start").click()


async def type_message(page: Any, text: str) -> None:
    await page.locator(".cc-input").fill(text)
    await page.locator(".cc-input").press("Enter")


def expect(page: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(page)


async def test_a_conversation_both_ways_and_a_reload_resumes_it(
    site: Site, chromium: Any, staff: Staff
) -> None:
    await site.available(staff.red_1)
    agent = await site.agent(staff.red_1)
    page = await visitor_page(chromium, site.shop)
    await start_chat(page, name="Grace", email="grace@example.com")
    assigned = await agent.next("chat.assigned")
    chat_id = assigned["conversation_id"]
    assert assigned["card"]["emails"] == ["grace@example.com"]
    await expect(page.locator(".cc-status")).to_have_text("You are chatting with Red-1.")

    await page.locator(".cc-input").fill("Hello, is my order")
    typing = await agent.next("chat.typing")
    assert typing["typing"] is True and typing["conversation_id"] == chat_id
    await type_message(page, "Hello, is my order shipped?")
    said = await agent.next("chat.message")
    assert said["message"]["text"] == "Hello, is my order shipped?"

    assert agent.ws is not None
    await agent.ws.send_json({"type": "chat.typing", "conversation_id": chat_id, "typing": True})
    await expect(page.locator(".cc-typing")).to_have_text("Red-1 is typing\u2026")
    await agent.post(f"/api/v1/chats/{chat_id}/messages", {"text": "Yes, it left today."})
    await expect(page.locator(".cc-from-agent .cc-text")).to_have_text("Yes, it left today.")
    await expect(page.locator(".cc-typing")).to_be_hidden()
    # The page saw the agent's message: read state reaches the agent; and back.
    read = await agent.next("chat.read")
    assert read["reader"] == "visitor"
    await agent.post(f"/api/v1/chats/{chat_id}/read", {"up_to": said["message"]["message_id"]})
    await expect(page.locator(".cc-from-visitor .cc-meta")).to_have_text("Read")

    await page.reload()
    await expect(page.locator(".cc-messages .cc-text")).to_have_text(
        ["Hello, is my order shipped?", "Yes, it left today."]
    )
    await expect(page.locator(".cc-status")).to_have_text("You are chatting with Red-1.")
    await type_message(page, "Thanks!")
    again = await agent.next("chat.message")
    assert again["conversation_id"] == chat_id and again["message"]["text"] == "Thanks!"
    assert page.errors == []
    await page.context.close()


async def test_a_script_sent_by_the_visitor_is_shown_as_text_and_never_runs(
    site: Site, chromium: Any, staff: Staff
) -> None:
    await site.available(staff.red_1)
    agent = await site.agent(staff.red_1)
    page = await visitor_page(chromium, site.shop)
    await start_chat(page)
    chat_id = (await agent.next("chat.assigned"))["conversation_id"]
    await type_message(page, HOSTILE)
    assert (await agent.next("chat.message"))["message"]["text"] == HOSTILE
    await agent.post(f"/api/v1/chats/{chat_id}/messages", {"text": HOSTILE})
    texts = page.locator(".cc-messages .cc-text")
    await expect(texts).to_have_text([HOSTILE, HOSTILE])
    await page.reload()  # history replayed on reload is text as well
    await expect(texts).to_have_text([HOSTILE, HOSTILE])
    # A broken image asked for after the messages were shown fails: an injected one would have too.
    await page.evaluate(PROBE_IMAGE)
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator(".cc-messages img").count() == 0
    assert await page.locator(".cc-messages script").count() == 0
    await page.context.close()


async def test_queue_position_while_agents_are_at_capacity(site: Site, chromium: Any, staff: Staff) -> None:
    await site.available(staff.red_1)
    agent = await site.agent(staff.red_1)
    first = await visitor_page(chromium, site.shop)
    await start_chat(first)
    chat_id = (await agent.next("chat.assigned"))["conversation_id"]
    second = await visitor_page(chromium, site.shop)  # a context of its own: another visitor
    await start_chat(second)
    await expect(second.locator(".cc-status")).to_have_text(
        "All our agents are busy. You are number 1 in line."
    )
    await agent.post(f"/api/v1/chats/{chat_id}/close")
    await expect(first.locator(".cc-ended")).to_be_visible()
    await expect(second.locator(".cc-status")).to_have_text("You are chatting with Red-1.")
    assert (await agent.next("chat.assigned"))["conversation_id"] != chat_id
    await first.context.close()
    await second.context.close()


async def test_with_nobody_online_a_left_message_becomes_a_ticket(
    site: Site, chromium: Any, uow_factory: UnitOfWorkFactory
) -> None:
    page = await visitor_page(chromium, site.shop)
    await page.locator(".cc-launcher").click()
    await expect(page.locator(".cc-offline")).to_be_visible()
    await page.locator(".cc-offline input[name=email]").fill("late@example.com")
    await page.locator(".cc-offline textarea").fill("Please call me tomorrow.")
    await page.locator(".cc-leave").click()
    await expect(page.locator(".cc-thanks-text")).to_contain_text("ticket #")
    number = int((await page.locator(".cc-thanks-text").text_content() or "").split("#")[1].split(")")[0])
    async with uow_factory() as uow:
        ticket = await uow.session.scalar(select(Ticket).where(Ticket.number == number))
    assert ticket is not None and ticket.source_channel is Channel.CHAT
    await page.context.close()


async def test_a_page_of_a_foreign_origin_is_refused(
    site: Site, chromium: Any, uow_factory: UnitOfWorkFactory
) -> None:
    page = await visitor_page(chromium, site.foreign)
    await expect(page.locator(".cc-status")).to_have_text("Chat is not available right now.")
    await expect(page.locator(".cc-launcher")).to_have_class("cc-launcher cc-unavailable")
    async with uow_factory() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(ChatVisitor)) == 0
        assert await uow.session.scalar(select(func.count()).select_from(ChatConversation)) == 0
    await page.context.close()
