"""Web chat benchmark: thousands of visitor sockets on one instance, messages to agents.

It migrates a throw-away database (``cc_bench_<hex>`` on the ``DATABASE_URL`` server, or an
SQLite file when DATABASE_URL is unset), creates the agents, and starts the service as its own
process (``python -m contact_center.cli serve --no-migrate``). This process plays the agents
(signed in, on ``/ws/agent``, available) and the visitors: it opens the visitor sockets
(``/ws/chat`` with an allowed Origin), starts a chat on each (every one is assigned: the agents'
capacity covers them all), then every visitor sends a message every 5 s (random phase) for the
measured period. The latency of a message is from the visitor's send to the ``chat.message``
frame read on the agent's socket. Memory per connection is the growth of the service's RSS from
before the visitors connected to after their chats started, divided by the number of sockets.

    python benchmarks/chat.py [--quick] [--sockets N] [--agents N] [--seconds S]

``--quick``: 200 sockets for 15 s. With ``REDIS_URL`` set the service uses Redis under a unique
key prefix, deleted at the end. Progress goes to stderr; the last line of stdout is one JSON
object: ``sockets``, ``p50_ms``, ``p99_ms``, ``rss_kb_per_socket`` and the counts behind them, and
the CPU time (user + system) the service and this load generator spent per message while measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import URL, make_url

from contact_center.auth.passwords import Argon2Hasher
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.services.agents import create_agent

HOST = "127.0.0.1"
ORIGIN = "http://bench.example"
PASSWORD = "bench-password-1"
INTERVAL_SECONDS = 5.0
# Visitors connect this many at a time: a larger burst exhausts the service's Redis connection
# pool (redis-py's default of 100 connections, which fails at once rather than waiting).
OPEN_BATCH = 25


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextlib.asynccontextmanager
async def bench_database(tmp: Path) -> AsyncIterator[str]:
    base = os.environ.get("DATABASE_URL")
    if not base:
        yield f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        return
    url: URL = make_url(base)
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def prepare(db_url: str, agents: int) -> list[str]:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        uow = UnitOfWorkFactory(engine, _NoEvents())
        hasher = Argon2Hasher(1, 8)
        logins = [f"chat-agent-{i:03d}" for i in range(agents)]
        async with uow() as unit:
            for login in logins:
                await create_agent(unit.session, hasher, login=login, display_name=login, password=PASSWORD)
            await unit.commit()
        return logins
    finally:
        await engine.dispose()


class _NoEvents:
    async def publish(self, events: Any) -> None:
        return None


def service_env(db_url: str, port: int, sockets: int, agents: int, redis_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONTACT_CENTER_CONFIG"}
    capacity = max(1, -(-sockets // agents))
    env.update(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "HOST": HOST,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "CONTACT_CENTER__SECURITY__PASSWORD_TIME_COST": "1",
            "CONTACT_CENTER__SECURITY__PASSWORD_MEMORY_KIB": "8",
            "CONTACT_CENTER__SECURITY__LOGIN_ATTEMPTS_PER_MINUTE": "100000",
            "CONTACT_CENTER__SERVER__SHUTDOWN_TIMEOUT": "2",
            "CONTACT_CENTER__WEBCHAT__ALLOWED_ORIGINS": json.dumps([ORIGIN]),
            "CONTACT_CENTER__WEBCHAT__MAX_CHATS_PER_AGENT": str(capacity),
            # Every simulated visitor comes from 127.0.0.1: the per-address limits must not bite.
            "CONTACT_CENTER__WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "10000000",
            "CONTACT_CENTER__WEBCHAT__CONNECTIONS_PER_MINUTE_PER_IP": "10000000",
        }
    )
    if os.environ.get("REDIS_URL"):
        env["REDIS_KEY_PREFIX"] = redis_prefix
    return env


async def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("the service exited during start-up")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("the service did not become ready")


class Agents:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies_ms: list[float] = []
        self.assigned = 0
        self.assigned_event = asyncio.Event()
        self.expected = 0

    async def listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT or message.data == "pong":
                continue
            frame = json.loads(message.data)
            kind = frame.get("type")
            if kind == "chat.message":
                sent = self.sent_at.pop(frame["message"]["id"], None)
                if sent is not None:
                    self.latencies_ms.append((time.perf_counter() - sent) * 1000)
            elif kind == "chat.assigned":
                self.assigned += 1
                if self.assigned >= self.expected:
                    self.assigned_event.set()


async def sign_in_agents(
    http: aiohttp.ClientSession, base: str, logins: list[str], agents: Agents
) -> list[asyncio.Task[None]]:
    tasks = []
    for login in logins:
        async with http.post(
            base + "/api/v1/auth/login", json={"login": login, "password": PASSWORD}
        ) as resp:
            resp.raise_for_status()
            csrf = (await resp.json())["csrf_token"]
            cookie = resp.cookies["cc_session"].value
        http.cookie_jar.clear()
        headers = {"Cookie": f"cc_session={cookie}", "X-CSRF-Token": csrf}
        ws = await http.ws_connect(base + "/ws/agent", headers=headers, heartbeat=None)
        async with http.put(
            base + "/api/v1/presence/me", json={"state": "available"}, headers=headers
        ) as resp:
            resp.raise_for_status()
        tasks.append(asyncio.create_task(agents.listen(ws)))
    return tasks


async def open_visitor(http: aiohttp.ClientSession, base: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(base + "/ws/chat", headers={"Origin": ORIGIN}, heartbeat=None)
    await ws.send_json({"type": "hello", "token": None})
    while json.loads((await ws.receive()).data)["type"] != "welcome":
        pass
    await ws.send_json({"type": "start"})
    while json.loads((await ws.receive()).data)["type"] != "started":
        pass
    return ws


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read (and so answer the service's heartbeat pings) until the socket closes."""
    with contextlib.suppress(aiohttp.ClientError):
        async for _ in ws:
            pass


async def visitor_loop(
    ws: aiohttp.ClientWebSocketResponse, agents: Agents, until: float, rng: random.Random
) -> int:
    sent = 0
    await asyncio.sleep(rng.uniform(0, INTERVAL_SECONDS))
    while time.perf_counter() < until and not ws.closed:
        client_id = secrets.token_hex(8)
        agents.sent_at[client_id] = time.perf_counter()
        try:
            await ws.send_json({"type": "message", "id": client_id, "text": "Where is my order?"})
        except aiohttp.ClientError:
            agents.sent_at.pop(client_id, None)
            break
        sent += 1
        await asyncio.sleep(INTERVAL_SECONDS)
    return sent


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    redis_prefix = f"cc-bench-{secrets.token_hex(4)}:"
    with tempfile.TemporaryDirectory() as tmp:
        async with bench_database(Path(tmp)) as db_url:
            logins = await prepare(db_url, args.agents)
            port = free_port()
            base = f"http://{HOST}:{port}"
            env = service_env(db_url, port, args.sockets, args.agents, redis_prefix)
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
                [sys.executable, "-m", "contact_center.cli", "serve", "--no-migrate"], env=env
            )
            try:
                await wait_ready(base, proc)
                connector = aiohttp.TCPConnector(limit=0)
                async with aiohttp.ClientSession(connector=connector) as http:
                    agents = Agents()
                    agents.expected = args.sockets
                    listeners = await sign_in_agents(http, base, logins, agents)
                    await asyncio.sleep(1)
                    rss_before = rss_kb(proc.pid)
                    log(f"service RSS before visitors: {rss_before} kB; opening {args.sockets} sockets")
                    visitors: list[aiohttp.ClientWebSocketResponse] = []
                    drains: list[asyncio.Task[None]] = []
                    opening = time.perf_counter()
                    for start in range(0, args.sockets, OPEN_BATCH):
                        batch = min(OPEN_BATCH, args.sockets - start)
                        opened = await asyncio.gather(*(open_visitor(http, base) for _ in range(batch)))
                        visitors += opened
                        drains += [asyncio.create_task(drain(ws)) for ws in opened]
                    await asyncio.wait_for(agents.assigned_event.wait(), 300)
                    opening = time.perf_counter() - opening
                    await asyncio.sleep(1)
                    rss_after = rss_kb(proc.pid)
                    log(f"all {args.sockets} chats assigned; service RSS {rss_after} kB; measuring")
                    server_cpu = cpu_seconds(proc.pid)
                    client_cpu = time.process_time()
                    until = time.perf_counter() + args.seconds
                    sent = sum(
                        await asyncio.gather(*(visitor_loop(ws, agents, until, rng) for ws in visitors))
                    )
                    await asyncio.sleep(2)  # the last messages in flight
                    server_cpu = cpu_seconds(proc.pid) - server_cpu
                    client_cpu = time.process_time() - client_cpu
                    for ws in visitors:
                        await ws.close()
                    for task in [*drains, *listeners]:
                        task.cancel()
                    await asyncio.gather(*drains, *listeners, return_exceptions=True)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                if os.environ.get("REDIS_URL"):
                    redis = Redis.from_url(os.environ["REDIS_URL"])
                    keys = [k async for k in redis.scan_iter(match=f"{redis_prefix}*")]
                    if keys:
                        await redis.delete(*keys)
                    await redis.aclose()
    latencies = agents.latencies_ms
    return {
        "sockets": args.sockets,
        "agents": args.agents,
        "seconds": args.seconds,
        "database": "postgresql" if os.environ.get("DATABASE_URL") else "sqlite",
        "bus": "redis" if os.environ.get("REDIS_URL") else "in-process",
        "messages_sent": sent,
        "messages_delivered": len(latencies),
        "sockets_closed_early": sum(1 for ws in visitors if ws.close_code not in (None, 1000)),
        "chats_started_per_s": round(args.sockets / opening, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "server_cpu_ms_per_message": round(server_cpu * 1000 / max(sent, 1), 3),
        "client_cpu_ms_per_message": round(client_cpu * 1000 / max(sent, 1), 3),
        "rss_kb_per_socket": round((rss_after - rss_before) / args.sockets, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sockets for 15 s")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.sockets, args.seconds = min(args.sockets, 200), min(args.seconds, 15.0)
    # Every chat must be assigned (webchat.max_chats_per_agent is at most 50).
    args.agents = max(args.agents, -(-args.sockets // 50))
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
