"""Browser tests against the real service: the service on a loopback port with the Twilio
sandbox mounted (``live``, which a test may stop and start again on the same port), a page signed
in through the login form, and a REST client for arranging and checking.

tests/e2e/conftest.py makes ``live`` and ``chromium`` (Debian's Chromium driven by Playwright, from
tests/browser_support.py; tests skip with the reason when it or Playwright is missing) available.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web

from contact_center.app import create_app
from contact_center.sandbox.access import CONTROL_TOKEN_HEADER
from contact_center.settings import Settings
from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN
from crm_core.db import UnitOfWorkFactory
from tests.conftest import PASSWORD, isolated_settings
from tests.support.waiting import free_port

SANDBOX_NUMBER = "+15005550006"  # the sandbox's default inbound number
VIEWPORT = {"width": 1280, "height": 900}


class LiveService:
    """The service on 127.0.0.1:<port>; ``stop()`` and ``start()`` again keep the port (and the
    database), like an operator restarting it."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._runner: web.AppRunner | None = None
        self._sandbox_headers: dict[str, str] = {}

    async def start(self) -> None:
        app = create_app(self.settings)
        self._sandbox_headers = {CONTROL_TOKEN_HEADER: app[SANDBOX_CONTROL_TOKEN]}
        runner = web.AppRunner(app, shutdown_timeout=2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def api(self, login: str) -> ApiClient:
        return await ApiClient.signed_in(self.base, login)

    async def sandbox_call(self, caller: str, *, to: str = SANDBOX_NUMBER) -> str:
        async with (
            aiohttp.ClientSession(headers=self._sandbox_headers) as http,
            http.post(f"{self.base}/twilio-sandbox/sandbox/calls", json={"from": caller, "to": to}) as resp,
        ):
            assert resp.status == 201, await resp.text()
            return str((await resp.json())["call_sid"])

    async def sandbox_state(self, call_sid: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(headers=self._sandbox_headers) as http,
            http.get(f"{self.base}/twilio-sandbox/sandbox/calls/{call_sid}") as resp,
        ):
            return dict(await resp.json())


class ApiClient:
    """A signed-in REST client (cookie and CSRF header), for arranging and checking what pages do."""

    def __init__(self, http: aiohttp.ClientSession, base: str, csrf: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"X-CSRF-Token": csrf}

    @classmethod
    async def signed_in(cls, base: str, login: str) -> ApiClient:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.post(
            f"{base}/api/v1/auth/login", json={"login": login, "password": PASSWORD}
        ) as resp:
            assert resp.status == 200, await resp.text()
            csrf = (await resp.json())["csrf_token"]
        return cls(http, base, csrf)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, f"{self.base}/api/v1{path}", json=body, headers=self.headers
        ) as resp:
            return resp.status, await resp.json() if resp.content_type == "application/json" else None

    async def close(self) -> None:
        await self.http.close()


@pytest_asyncio.fixture(loop_scope="session")
async def live(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[LiveService]:
    """The service with the sandbox mounted, on a port of its own; stopped at the end."""
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        sandbox={"seed": 1, "time_scale": 0.25},
        voice={"wrap_up_seconds": 60},
    )
    service = LiveService(site, port)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def signed_in_page(chromium: Any, base: str, login: str, path: str = "/console") -> Any:
    """A fresh browser context signed in through the login page, showing ``path`` once ready."""
    context = await chromium.new_context(viewport=VIEWPORT, base_url=base)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.script_errors = errors
    await page.goto(path)
    await page.wait_for_url(re.compile(r"/login"))
    await page.fill("#login", login)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(path) + "$"))
    await page.wait_for_selector("body[data-ready=true], .refusal")
    return page
