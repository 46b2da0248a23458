"""No answer names the server's software or versions (contact_center/server_header.py): API
answers and errors, pages, static files, WebSocket upgrades, the mounted and the standalone Twilio
sandbox; aiohttp's own answers to malformed requests say only "contact-center"."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from contact_center.sandbox import SandboxConfig, create_sandbox_app
from contact_center.server_header import NEUTRAL_SERVER
from tests.conftest import SignIn, Staff

Client = TestClient[Any, Any]

# (method, path, extra headers) -> what it is; every one is asked with and without a session.
REQUESTS = {
    "health": ("GET", "/healthz", {}),
    "API read": ("GET", "/api/v1/customers", {}),
    "API error": ("GET", "/api/v1/customers/999999", {}),
    "API bad body": ("POST", "/api/v1/customers", {"Content-Type": "application/json"}),
    "unknown path": ("GET", "/no/such/page", {}),
    "wrong method": ("DELETE", "/healthz", {}),
    "page": ("GET", "/login", {}),
    "redirect": ("GET", "/", {}),
    "static file": ("GET", "/static/css/app.css", {}),
    "static range": ("GET", "/static/css/app.css", {"Range": "bytes=0-9"}),
    "missing static file": ("GET", "/static/nope.css", {}),
    "OpenAPI": ("GET", "/api/openapi.json", {}),
    "mounted sandbox": ("GET", "/twilio-sandbox/2010-04-01/Accounts/ACx/Calls.json", {}),
    "mounted sandbox 404": ("GET", "/twilio-sandbox/nothing", {}),
}


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
async def test_no_response_names_the_server(
    client: Client, staff: Staff, sign_in: SignIn, signed_in: bool
) -> None:
    session = await sign_in(staff.red_1) if signed_in else None
    seen = {}
    for what, (method, path, headers) in REQUESTS.items():
        sent = {**(session.headers if session else {}), **headers}
        body = b"{" if "bad" in what else None
        resp = await client.request(method, path, headers=sent, data=body, allow_redirects=False)
        await resp.read()
        seen[what] = (resp.status, resp.headers.get("Server"))
    assert {what: server for what, (_, server) in seen.items()} == dict.fromkeys(REQUESTS), seen
    statuses = {status for status, _ in seen.values()}
    assert {200, 206, 302, 404, 405} <= statuses, seen  # successes, redirects and errors alike


async def test_an_upgraded_web_socket_names_no_server(client: Client, staff: Staff, sign_in: SignIn) -> None:
    session = await sign_in(staff.red_1)
    upgrade = (
        "GET /ws/agent HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Cookie: {session.headers['Cookie']}\r\n\r\n"
    )
    status, servers = await raw_exchange(client, upgrade.encode())
    assert (status, servers) == (101, [])
    refused = await client.get("/ws/agent", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert refused.status == 401 and "Server" not in refused.headers


async def raw_exchange(client: Client, request: bytes) -> tuple[int, list[str]]:
    """Send raw bytes; the answer's status and its Server headers."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    finally:
        writer.close()
    status_line, *header_lines = head.strip().split("\r\n")
    servers = [line.split(":", 1)[1].strip() for line in header_lines if line.lower().startswith("server:")]
    return int(status_line.split()[1]), servers


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["not HTTP", "bad header", "bad method", "request line too long"],
)
async def test_malformed_requests_are_answered_without_versions(client: Client, request_bytes: bytes) -> None:
    status, servers = await raw_exchange(client, request_bytes)
    assert 400 <= status < 500
    assert servers in ([], [NEUTRAL_SERVER])


async def test_the_standalone_sandbox_names_no_server() -> None:
    config = SandboxConfig(account_sid="ACstandalone", auth_token="secret", time_scale=0.01)
    async with TestClient(TestServer(create_sandbox_app(config))) as sandbox:
        for path in ("/2010-04-01/Accounts/ACstandalone/Calls.json", "/sandbox/messages", "/nothing"):
            resp = await sandbox.get(path)
            assert "Server" not in resp.headers, (path, resp.status, resp.headers.get("Server"))
        status, servers = await raw_exchange(sandbox, b"GARBAGE\r\n\r\n")
        assert status == 400 and servers in ([], [NEUTRAL_SERVER])
