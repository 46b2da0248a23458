"""`contact-center sandbox serve` and `sandbox call`: a caller rings the demo number of a standalone sandbox."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from tests.support.waiting import free_port

DEMO_NUMBER = "+15005550006"
TOKEN = "sandbox-cli-test-auth-token"
CONTROL_TOKEN = "sandbox-cli-test-control-token"


async def _wait_listening(url: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{url}/sandbox") as resp:
                    if resp.status == 401:  # listening, and not driven without the token
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"the sandbox did not start at {url}")
            await asyncio.sleep(0.1)


async def test_serve_then_call_prints_the_sid_and_the_log(tmp_path: Path) -> None:
    received: list[tuple[str, bool]] = []
    validator = RequestValidator(TOKEN)

    async def webhook(request: web.Request) -> web.Response:
        form = await request.post()
        received.append(
            (
                request.path,
                validator.validate(str(request.url), form, request.headers.get("X-Twilio-Signature", "")),
            )
        )
        if request.path == "/twilio/voice/inbound":
            return web.Response(
                text="<Response><Say>Welcome to the demo</Say><Hangup/></Response>", content_type="text/xml"
            )
        return web.Response(text="<Response/>", content_type="text/xml")

    service = web.Application()
    service.router.add_post("/{tail:.*}", webhook)
    async with TestServer(service) as fake:
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
        env.update(
            {
                "CONTACT_CENTER__SECURITY__VAR_DIR": str(tmp_path),
                "PUBLIC_BASE_URL": str(fake.make_url("")).rstrip("/"),
                "TWILIO_AUTH_TOKEN": TOKEN,
            }
        )
        cli = [sys.executable, "-m", "contact_center.cli", "sandbox"]
        server = await asyncio.create_subprocess_exec(
            *cli,
            "serve",
            "--port",
            str(port),
            "--time-scale",
            "0.01",
            env={**env, "SANDBOX_CONTROL_TOKEN": CONTROL_TOKEN},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _wait_listening(sandbox_url)
            refused = await asyncio.create_subprocess_exec(
                *cli,
                "call",
                "--from",
                "+14155550100",
                "--to",
                DEMO_NUMBER,
                "--url",
                sandbox_url,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(refused.communicate(), 60)
            assert refused.returncode == 1 and "control token" in err.decode(), (out, err)
            caller = await asyncio.create_subprocess_exec(
                *cli,
                "call",
                "--from",
                "+14155550100",
                "--to",
                DEMO_NUMBER,
                "--url",
                sandbox_url,
                "--wait",
                "30",
                "--token",
                CONTROL_TOKEN,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(caller.communicate(), 60)
            assert caller.returncode == 0, err.decode()
            text = out.decode()
            assert re.match(r"^CA[0-9a-f]{32}\n", text), text
            assert "status completed" in text
            assert "Welcome to the demo" in text
        finally:
            server.terminate()
            assert await asyncio.wait_for(server.wait(), 30) == 0
        assert ("/twilio/voice/inbound", True) in received
        assert ("/twilio/voice/status", True) in received
        assert all(valid for _, valid in received)
