"""Traffic on every channel through the load balancer of a :class:`FaultCluster`, kept going
through faults the way real clients keep going: agents' consoles reconnect their sockets,
chat widgets reconnect and resend what was not acknowledged (same id), callers and texters are
played by the sandbox. Each driver records what the service acknowledged, for the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.fault_cluster import NUMBER, ORIGIN, PASSWORD, FaultCluster, control_headers

RETRYABLE = (aiohttp.ClientError, OSError, TimeoutError, asyncio.TimeoutError)


@dataclass
class Console:
    """An agent's console: signed in through the load balancer, its socket reopened whenever its
    instance goes away, every frame kept with the time it came."""

    base_url: str
    login: str
    cookie: str = ""
    csrf: str = ""
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    reconnects: int = 0
    agent_id: int | None = None

    async def sign_in(self, http: aiohttp.ClientSession) -> None:
        async def attempt() -> None:
            async with http.post(
                f"{self.base_url}/api/v1/auth/login", json={"login": self.login, "password": PASSWORD}
            ) as resp:
                assert resp.status == 200, await resp.text()
                self.csrf = (await resp.json())["csrf_token"]
                self.cookie = resp.cookies["cc_session"].value

        await retrying(attempt)

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"cc_session={self.cookie}", "X-CSRF-Token": self.csrf}

    async def set_state(self, http: aiohttp.ClientSession, state: str) -> None:
        async def attempt() -> None:
            async with http.put(
                f"{self.base_url}/api/v1/presence/me", json={"state": state}, headers=self.headers()
            ) as resp:
                assert resp.status == 200, await resp.text()

        await retrying(attempt)

    async def run(self, http: aiohttp.ClientSession) -> None:
        """Keep the socket open until cancelled, as the console's own reconnect loop does."""
        while True:
            with contextlib.suppress(*RETRYABLE):
                async with http.ws_connect(
                    f"{self.base_url}/ws/agent", headers={"Cookie": f"cc_session={self.cookie}"}, heartbeat=5
                ) as ws:
                    if self.reconnects:
                        await self._reload_chats(http)
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            frame = json.loads(message.data)
                            if frame.get("type") == "hello":
                                self.agent_id = frame.get("agent_id")
                            self.frames.append((time.monotonic(), frame))
            self.reconnects += 1
            await asyncio.sleep(0.3)

    async def _reload_chats(self, http: aiohttp.ClientSession) -> None:
        """What the console does when its socket comes back: read its chats' transcripts again."""
        async with http.get(f"{self.base_url}/api/v1/chats", headers=self.headers()) as resp:
            if resp.status != 200:
                return
            chats = (await resp.json())["items"]
        mine = [chat for chat in chats if chat.get("agent_id") == self.agent_id]
        for chat in mine:
            async with http.get(
                f"{self.base_url}/api/v1/chats/{chat['id']}/transcript", headers=self.headers()
            ) as resp:
                if resp.status == 200:
                    lines = [
                        {"from": m["sender"], "id": m["client_id"]} for m in (await resp.json())["messages"]
                    ]
                    self.frames.append((time.monotonic(), {"type": "transcript", "history": lines}))

    def chat_messages(self) -> dict[str, float]:
        """Each visitor message's id, with the first time it reached this console (the console
        shows a message once, whatever the number of frames that carried it)."""
        seen: dict[str, float] = {}
        for at, frame in self.frames:
            if frame.get("type") == "chat.message":
                lines = [frame.get("message") or {}]
            elif frame.get("type") in ("chat.assigned", "transcript"):
                lines = list(frame.get("history") or [])  # what the visitor wrote before
            else:
                continue
            for line in lines:
                if line.get("from") == "visitor":
                    seen.setdefault(str(line.get("id")), at)
        return seen

    def pops_after(self, moment: float) -> list[tuple[float, dict[str, Any]]]:
        return [(at, f) for at, f in self.frames if at >= moment and f.get("type") == "call.screen_pop"]


@dataclass
class Visitor:
    """A chat widget: one conversation, a message every ``interval`` seconds; a message not
    acknowledged is resent with the same id on a new socket until it is."""

    base_url: str
    number: int
    series: str  # tells apart the visitors of successive runs on one cluster
    interval: float = 0.5
    token: str | None = None
    started: bool = False
    acked: dict[str, float] = field(default_factory=dict)  # client id -> when acknowledged
    refused: list[dict[str, Any]] = field(default_factory=list)
    _ws: aiohttp.ClientWebSocketResponse | None = None

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        for n in itertools.count():
            if stop.is_set():
                break
            client_id = f"{self.series}-v{self.number}-{n}"
            while not stop.is_set() and client_id not in self.acked:
                try:
                    ws = await self._socket(http)
                    await ws.send_json(
                        {"type": "message", "id": client_id, "text": f"visitor {self.number} #{n}"}
                    )
                    frame = await self._answer(ws, client_id)
                    if frame["type"] == "ack":
                        self.acked[client_id] = time.monotonic()
                    else:
                        self.refused.append(frame)
                        await asyncio.sleep(1)
                except RETRYABLE:
                    await self._drop()
                    await asyncio.sleep(0.3)
            await asyncio.sleep(self.interval)
        await self._drop()

    async def _socket(self, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        if self._ws is not None and not self._ws.closed:
            return self._ws
        ws = await http.ws_connect(f"{self.base_url}/ws/chat", headers={"Origin": ORIGIN}, heartbeat=5)
        self._ws = ws
        await ws.send_json({"type": "hello", "token": self.token})
        welcome = await self._next(ws, "welcome")
        self.token = welcome["token"]
        if not self.started:
            await ws.send_json({"type": "start", "name": f"Visitor {self.number}"})
            await self._next(ws, "started")
            self.started = True
        return ws

    async def _next(self, ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionResetError(f"socket closed waiting for {kind}")
                frame = json.loads(message.data)
                if frame.get("type") == kind:
                    return dict(frame)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, client_id: str) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionResetError("socket closed waiting for an ack")
                frame = json.loads(message.data)
                if frame.get("type") in ("ack", "error") and frame.get("id") == client_id:
                    return dict(frame)

    async def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(*RETRYABLE):
                await ws.close()


@dataclass
class Phones:
    """Callers and texters, played by the sandbox: it rings the service's number and texts it
    through the load balancer as Twilio would."""

    sandbox_url: str
    calls: list[str] = field(default_factory=list)  # CallSids the sandbox started
    texts: list[str] = field(default_factory=list)  # MessageSids the service answered
    texts_refused: int = 0
    _n: itertools.count[int] = field(default_factory=itertools.count)

    async def call(self, http: aiohttp.ClientSession, talk_seconds: float = 3.0) -> str:
        caller = f"+1202555{next(self._n) % 10000:04d}"
        body = {"from": caller, "to": NUMBER, "hangup_after_seconds": talk_seconds}
        async with http.post(
            f"{self.sandbox_url}/sandbox/calls", json=body, headers=control_headers()
        ) as resp:
            assert resp.status == 201, await resp.text()
            sid = str((await resp.json())["call_sid"])
        self.calls.append(sid)
        return sid

    async def text(self, http: aiohttp.ClientSession) -> None:
        n = next(self._n)
        body = {"from": f"+1202666{n % 10000:04d}", "to": NUMBER, "body": f"text number {n}"}
        async with http.post(f"{self.sandbox_url}/sandbox/sms", json=body, headers=control_headers()) as resp:
            assert resp.status == 201, await resp.text()
            message = (await resp.json())["message"]
        if any(entry.get("event") == "error" for entry in message.get("log", [])):
            self.texts_refused += 1  # the webhook failed (the instance died under it): not acknowledged
        else:
            self.texts.append(str(message["sid"]))

    async def sandbox_calls(self, http: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        async with http.get(f"{self.sandbox_url}/sandbox/calls", headers=control_headers()) as resp:
            return {c["sid"]: c for c in (await resp.json())["calls"]}

    async def inbound_answered(self, http: aiohttp.ClientSession, sid: str) -> bool:
        """Whether the service answered the call's first webhook (else Twilio never handed the
        call over: nothing to find in the database)."""
        async with http.get(f"{self.sandbox_url}/sandbox/calls/{sid}", headers=control_headers()) as resp:
            state = await resp.json()
        log = state.get("log", [])
        for entry in log:
            if entry.get("event") == "webhook":
                return True
            if entry.get("event") == "error":
                return False
        return False


async def retrying(attempt: Any, timeout: float = 30) -> None:
    """An HTTP request a client repeats while the load balancer has no instance for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await attempt()
            return
        except RETRYABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


@dataclass
class Traffic:
    """Every driver at once, started by :meth:`start` and stopped by :meth:`stop`."""

    cluster: FaultCluster
    visitors: int = 4
    call_every: float = 1.0
    text_every: float = 0.5
    http: aiohttp.ClientSession | None = None
    consoles: list[Console] = field(default_factory=list)
    chat: list[Visitor] = field(default_factory=list)
    phones: Phones | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _console_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        self.phones = Phones(self.cluster.sandbox_url)
        for login in self.cluster.logins:
            console = Console(self.cluster.base_url, login)
            await console.sign_in(self.http)
            self.consoles.append(console)
            self._console_tasks.append(asyncio.create_task(console.run(self.http)))
        for console in self.consoles:
            await console.set_state(self.http, "available")
        run = secrets.token_hex(3)
        self.chat = [Visitor(self.cluster.base_url, n, run) for n in range(self.visitors)]
        self._tasks = [asyncio.create_task(v.run(self.http, self._stop)) for v in self.chat]
        self._tasks.append(asyncio.create_task(self._every(self.call_every, self._call)))
        self._tasks.append(asyncio.create_task(self._every(self.text_every, self._text)))

    async def _call(self) -> None:
        assert self.http is not None and self.phones is not None
        await self.phones.call(self.http)

    async def _text(self) -> None:
        assert self.http is not None and self.phones is not None
        await self.phones.text(self.http)

    async def _every(self, seconds: float, action: Any) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(*RETRYABLE):
                await action()
            await asyncio.sleep(seconds)

    async def stop_traffic(self) -> None:
        """No new calls, texts or chat messages; the consoles stay."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_traffic()
        for task in self._console_tasks:
            task.cancel()
        await asyncio.gather(*self._console_tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()

    def delivered_chat(self) -> dict[str, float]:
        """Each visitor message's id, with the first time any console showed it."""
        seen: dict[str, float] = {}
        for console in self.consoles:
            for client_id, at in console.chat_messages().items():
                seen[client_id] = min(at, seen.get(client_id, at))
        return seen

    def acked_chat(self) -> dict[str, float]:
        return {cid: at for v in self.chat for cid, at in v.acked.items()}
