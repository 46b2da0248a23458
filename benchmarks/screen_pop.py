"""Screen-pop benchmark: signed inbound-call webhooks against the real service, card on agents' sockets.

It creates a throw-away database (``cc_bench_<hex>``) on the ``DATABASE_URL`` server, migrates it,
loads 1M synthetic customers with ``_load.load`` (the loader of ``customer_card.py``), turns the
loaded agents into 50 agents (role agent, active, one known password) and starts the service as
its own process (``python -m contact_center.cli serve --no-migrate``, wrap-up 0 s). This process
is the load generator and Twilio's stand-in: it signs in the 50 agents, opens their ``/ws/agent``
sockets, sets them available, and then

1. posts signed ``/twilio/voice/inbound`` webhooks on an open-loop Poisson schedule at 25, 50 and
   100 calls/s, 60 s each (after a short warm-up), from random loaded customers' phones and ~2%
   unknown numbers. For each routed call it measures the webhook latency (request sent → TwiML
   read) and the pop latency (request sent → the call's ``call.screen_pop`` frame read from the
   agent's socket), then plays the agent taking and ending the call at once (signed ``agent-leg``
   in-progress, then ``dial-action`` completed) so that the agent is free again. Calls answered
   with ``<Enqueue>`` (nobody free) are counted apart and abandoned (status ``completed``). Every
   answer is parsed as TwiML and checked (``_saturate.read_twiml``): a ``<Dial>`` ringing one
   agent's browser with that agent's URLs, or an ``<Enqueue>``; anything else is an error;
2. saturates four handlers one after another, closed loop (``_saturate.py`` client processes),
   every answer checked (a 2xx with another answer than the right one is a mismatch, counted as
   an error and never as a success): a bare aiohttp GET handler (must answer ``ok``) and a
   signed-webhook floor (``_floor_server.py``: parse the form, check the signature, fixed TwiML;
   must answer exactly that), each in its own process, 64 requests in flight; the routed path
   with the agents available (``routed_webhook``: 50 whole calls under way, one per agent at most;
   each inbound-call webhook must ring a signed-in agent who is not on another of the client's
   calls, then the agent answers and the call completes, so that the agent is free again; each
   routed call's pop must reach that agent's socket with the caller's card); and the queued path,
   the inbound-call webhook with every agent away (``webhook``: nobody is free, so each call queues
   as in a surge and must be answered ``<Enqueue>``; 64 requests in flight, every one with its own
   CallSid). The order is bare, floor, routed_webhook, routed_webhook, then (agents away) webhook,
   webhook, floor, bare, so that noise from other processes hits all four alike; the queued runs
   come last because the callers they leave waiting would take the agents of a routed run.

The database is dropped at the end, also on failure; with ``REDIS_URL`` set the service uses Redis
under a unique key prefix whose keys are deleted at the end.

    python benchmarks/screen_pop.py [--quick] [--seed N] [--client-procs N] [--profile DIR]
                                    [--calls-csv FILE] [--saturation-only] [--cprofile FILE]

``--quick`` loads 100k customers, runs each rate for 10 s and each saturation for 5 s.
``--profile DIR`` samples the service with py-spy during the rate steps and its saturations
(collapsed stacks in DIR; py-spy must be installed, and the figures of such a run are perturbed).
``--saturation-only`` skips the call rates (the figures then have no ``pop_*_R`` keys); ``--cprofile FILE``
runs the service under cProfile and leaves its statistics in FILE.
Before each step, and before the saturations, it waits until the service has worked off any
backlog. Progress goes to stderr; the last line of stdout is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
from _floor_server import FIXED_TWIML
from _load import (
    AGENT_COLUMNS,
    DEFAULT_URL,
    N_TEAMS,
    Generator,
    admin_dsn,
    create_database,
    drop_database,
    load,
    say,
)
from _saturate import (
    Answer,
    AnswerReader,
    CallerPicker,
    agent_answered_params,
    dial_completed_params,
    hung_up_params,
    inbound_params,
)
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.engine import URL, make_url
from twilio.request_validator import RequestValidator

from contact_center.auth.passwords import Argon2Hasher
from crm_core.db import create_engine, migrate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
VOICE = "/twilio/voice"
SCREEN_POP = "call.screen_pop"

N_CUSTOMERS, QUICK_CUSTOMERS = 1_000_000, 100_000
N_AGENTS = 50
PASSWORD = "screen-pop-benchmark"
AUTH_TOKEN = "screen-pop-benchmark-auth-token"
ACCOUNT_SID = "AC" + "b" * 32
UNKNOWN_SHARE = 0.02
RATES = (25, 50, 100)
STEP_S, QUICK_STEP_S = 60.0, 10.0
WARMUP_RATE, WARMUP_S, QUICK_WARMUP_S = 25, 10.0, 5.0
DRAIN_S = 15.0
SATURATION_S, QUICK_SATURATION_S = 10.0, 5.0
SATURATION_WARMUP_S = 2.0
IDLE_S = 6.0
SETTLE_S = 180.0
# First with the agents available (routed calls), then with every agent away (queued calls): the
# queued saturation leaves thousands of callers waiting, which would take the agents of a later
# routed run. Each handler runs twice; bare and floor before and after, so that noise from other
# processes hits all four alike.
SATURATION_PHASES = (
    ("bare", "floor", "routed_webhook", "routed_webhook"),
    ("webhook", "webhook", "floor", "bare"),
)
SATURATED = ("bare", "floor", "routed_webhook", "webhook")
RUNS_PER_HANDLER = 2
CONCURRENCY = 64
# Whole calls in flight in the routed saturation: one agent each at most, so that one is always free.
ROUTED_CONCURRENCY = N_AGENTS
POP_P99_TARGET_MS = 50.0
RATIO_TARGET = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")

POP_PREFIX = f'{{"type": "{SCREEN_POP}"'  # realtime._frame puts the type first


# --- measuring ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def process_cpu_s(pid: int, *, system_only: bool = False) -> float:
    """User + system (or only system) CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[12]) + (0 if system_only else int(fields[11]))) / CLK_TCK


def postgres_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends serving ``database`` (all of PostgreSQL when empty),
    by pid. Shared background processes (WAL writer, checkpointer) are not counted."""
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            if raw[raw.find("(") + 1 : raw.rfind(")")] != "postgres":
                continue
            if database and f" {database} " not in (stat.parent / "cmdline").read_text():
                continue
        except OSError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuMeter:
    """CPU used between start() and stop(): by the server under test, PostgreSQL (backends that
    ended meanwhile are missed), this load generator, and the whole machine (in cores)."""

    server_pid: int
    database: str
    wall_s: float = 0.0
    server_s: float = 0.0
    server_sys_s: float = 0.0  # of which in the kernel (syscalls: sockets)
    postgres_s: float = 0.0
    generator_s: float = 0.0
    machine_cores: float = 0.0
    machine_busy: float = 0.0
    _t0: float = 0.0
    _server0: float = 0.0
    _server_sys0: float = 0.0
    _pg0: dict[int, float] = field(default_factory=dict)
    _gen0: float = 0.0
    _ticks0: tuple[int, int] = (0, 0)

    def start(self) -> None:
        self._t0, self._server0 = time.perf_counter(), process_cpu_s(self.server_pid)
        self._server_sys0 = process_cpu_s(self.server_pid, system_only=True)
        self._pg0, self._gen0 = postgres_cpu_s(self.database), time.process_time()
        self._ticks0 = machine_ticks()

    def stop(self) -> None:
        busy1, total1 = machine_ticks()
        busy0, total0 = self._ticks0
        self.wall_s = time.perf_counter() - self._t0
        self.server_s = process_cpu_s(self.server_pid) - self._server0
        self.server_sys_s = process_cpu_s(self.server_pid, system_only=True) - self._server_sys0
        self.postgres_s = sum(s - self._pg0.get(pid, 0.0) for pid, s in postgres_cpu_s(self.database).items())
        self.generator_s = time.process_time() - self._gen0
        self.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
        self.machine_cores = self.machine_busy * (os.cpu_count() or 1)

    def others(self, *extra_s: float) -> float:
        """Cores kept busy by everything not accounted for (other processes: noise)."""
        mine = self.server_s + self.postgres_s + self.generator_s + sum(extra_s)
        return max(0.0, self.machine_cores - mine / max(1e-9, self.wall_s))


# --- the service and the baseline servers --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A child process serving HTTP on ``port``; its output goes to a temporary log file."""

    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.proc: asyncio.subprocess.Process | None = None
        self.log_fd, self.log_path = tempfile.mkstemp(prefix="cc_bench_", suffix=".log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, ready_path: str, *, need_ok: bool = True, wait_s: float = 60.0) -> None:
        """Start and wait until ``ready_path`` answers (200 with ``need_ok``, else any HTTP status)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_fd,
            stderr=self.log_fd,
        )
        url = f"http://{HOST}:{self.port}{ready_path}"
        deadline = time.perf_counter() + wait_s
        async with aiohttp.ClientSession() as session:
            while time.perf_counter() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as resp:
                        if resp.status == 200 or not need_ok:
                            return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {wait_s:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = Path(self.log_path).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM (the service shuts down cleanly), SIGKILL if it takes over 15 s; drop the log."""
        try:
            if self.proc is not None and self.proc.returncode is None:
                self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), 15)
                except TimeoutError:
                    self.proc.kill()
                    await self.proc.wait()
            if self.proc is not None and self.proc.returncode not in (0, -15):
                say(f"{self.name} ended with {self.proc.returncode}:\n{self.tail()}")
        finally:
            self.drop_log()

    def drop_log(self) -> None:
        os.close(self.log_fd)
        Path(self.log_path).unlink(missing_ok=True)


class FakeTwilioRest:
    """Twilio's REST API as far as the service uses it here: redirecting a queued call."""

    def __init__(self) -> None:
        self.redirects = 0
        self.app = web.Application()
        self.app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{sid}.json", self.update_call)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.port = 0

    async def update_call(self, request: web.Request) -> web.Response:
        await request.post()
        self.redirects += 1
        sid = request.match_info["sid"]
        return web.json_response({"sid": sid, "status": "in-progress", "account_sid": ACCOUNT_SID})

    async def start(self) -> str:
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, HOST, self.port).start()
        return f"http://{HOST}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


def service_env(db_url: URL, port: int, rest_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CONTACT_CENTER_CONFIG"}
    env.update(
        {
            "DATABASE_URL": db_url.render_as_string(hide_password=False),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "HOST": HOST,
            "PORT": str(port),
            "PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": rest_url,
            "CONTACT_CENTER__VOICE__WRAP_UP_SECONDS": "0",
            "CONTACT_CENTER__SECURITY__PASSWORD_TIME_COST": "1",
            "CONTACT_CENTER__SECURITY__PASSWORD_MEMORY_KIB": "8",
            "CONTACT_CENTER__SERVER__SHUTDOWN_TIMEOUT": "2",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["REDIS_KEY_PREFIX"] = redis_prefix
    return env


# --- data ----------------------------------------------------------------------------------------


async def make_agents(url: URL, password_hash: str) -> list[str]:
    """The loader's 40 agents become plain agents with a password; agents up to N_AGENTS are added.

    Customers' owners are among them (70% of customers have one), so sticky routing is exercised.
    """
    conn = await asyncpg.connect(admin_dsn(url))
    try:
        await conn.execute(
            "UPDATE agents SET role = 'agent', active = true, password_hash = $1", password_hash
        )
        have = await conn.fetchval("SELECT coalesce(max(id), 0) FROM agents")
        now = datetime.now(UTC)
        extra = [
            (
                i,
                f"agent{i:02d}",
                f"Agent {i:02d}",
                f"agent{i:02d}@contact-center.example",
                "agent",
                (i - 1) % N_TEAMS + 1,
                None,
                '["en"]',
                password_hash,
                True,
                now,
                now,
            )
            for i in range(have + 1, N_AGENTS + 1)
        ]
        if extra:
            await conn.copy_records_to_table("agents", records=extra, columns=AGENT_COLUMNS)
        await conn.execute("SELECT setval(pg_get_serial_sequence('agents', 'id'), max(id)) FROM agents")
        await conn.execute("ANALYZE agents")
        return [r["login"] for r in await conn.fetch("SELECT login FROM agents ORDER BY id")]
    finally:
        await conn.close()


# --- the load generator --------------------------------------------------------------------------


@dataclass
class Call:
    sid: str
    caller: str
    offset: float  # seconds after the step's start
    body: bytes = b""
    signature: str = ""
    scheduled: float = 0.0
    sent: float = 0.0
    answered: float = 0.0
    popped: float = 0.0
    status: int = 0
    agent_id: int | None = None
    pop_agent_id: int | None = None
    queued: bool = False
    card_ok: bool = False
    error: str = ""
    responded: asyncio.Event = field(default_factory=asyncio.Event)  # TwiML read (or failed)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # and the agent is free again


@dataclass
class Agent:
    login: str
    id: int = 0
    cookie: str = ""
    csrf: str = ""
    ws: aiohttp.ClientWebSocketResponse | None = None


@dataclass
class StepResult:
    rate: int
    calls: list[Call]
    duration_s: float
    cpu: CpuMeter
    lags_ms: list[float]

    def write_csv(self, path: str, *, append: bool) -> None:
        """One line per call: times in ms from the step's start (sent) or from sending (others)."""
        t0 = min((c.scheduled - c.offset for c in self.calls), default=0.0)

        def ms(value: float, since: float) -> str:
            return f"{(value - since) * 1000:.2f}" if value else ""

        with open(path, "a" if append else "w", newline="") as fh:
            out = csv.writer(fh)
            if not append:
                out.writerow(["rate", "call_sid", "sent_ms", "webhook_ms", "pop_ms", "agent_id", "queued"])
            for c in self.calls:
                times = [ms(c.sent, t0), ms(c.answered, c.sent), ms(c.popped, c.sent)]
                out.writerow([self.rate, c.sid, *times, c.agent_id or "", int(c.queued)])

    def summary(self) -> dict[str, Any]:
        routed = [c for c in self.calls if c.agent_id is not None]
        popped = [c for c in routed if c.popped]
        pops = [(c.popped - c.sent) * 1000 for c in popped]
        hooks = [(c.answered - c.sent) * 1000 for c in self.calls if c.answered]
        n = len(self.calls)
        return {
            "calls": n,
            "routed": len(routed),
            "queued": sum(1 for c in self.calls if c.queued),
            "errors": sum(1 for c in self.calls if c.error or (c.status and c.status != 200)),
            # No answer yet when the step ended (after DRAIN_S): the webhook figures leave them out.
            "unanswered": sum(1 for c in self.calls if not c.answered and not c.error),
            "pop_missing": len(routed) - len(popped),
            "pop_wrong_agent": sum(1 for c in popped if c.pop_agent_id != c.agent_id),
            "card_bad": sum(1 for c in popped if not c.card_ok),
            "pop_p50_ms": percentile(pops, 50),
            "pop_p99_ms": percentile(pops, 99),
            "pop_max_ms": max(pops, default=float("nan")),
            "webhook_p50_ms": percentile(hooks, 50),
            "webhook_p99_ms": percentile(hooks, 99),
            "achieved_rate": n / self.duration_s,
            "schedule_lag_p99_ms": percentile(self.lags_ms, 99),
            "schedule_lag_max_ms": max(self.lags_ms, default=0.0),
            "service_cpu_ms_per_call": self.cpu.server_s * 1000 / max(1, n),
            "postgres_cpu_ms_per_call": self.cpu.postgres_s * 1000 / max(1, n),
            "service_cpu_util": self.cpu.server_s / max(1e-9, self.cpu.wall_s),
            "generator_cpu_util": self.cpu.generator_s / max(1e-9, self.cpu.wall_s),
            "machine_busy": self.cpu.machine_busy,
            "other_cores": self.cpu.others(),
        }


class Twilio:
    """Plays Twilio (signed webhooks) and the agents' browsers against the service."""

    def __init__(
        self, session: aiohttp.ClientSession, port: int, phones: Sequence[str], seed: int, database: str
    ) -> None:
        self.session, self.database = session, database
        self.base = f"http://{HOST}:{port}"
        self.validator = RequestValidator(AUTH_TOKEN)
        self.rng = random.Random(seed)
        self.callers = CallerPicker(list(phones), UNKNOWN_SHARE, self.rng)
        self.calls: dict[str, Call] = {}
        self.agents: dict[int, Agent] = {}
        self.tasks: set[asyncio.Task[None]] = set()  # calls and agents' answers in progress
        self.readers: set[asyncio.Task[None]] = set()  # the agents' sockets
        self.answers = AnswerReader(self.base)
        self.unexpected_pops = 0
        self.duplicate_pops = 0
        # During a routed saturation: CallSid -> (the agent whose socket got its pop, the card's phones).
        self.saturation_pops: dict[str, tuple[int, list[str]]] | None = None
        self.saturation_duplicate_pops = 0
        self.offers_of_queued_calls = 0
        self.agent_errors = 0
        self._serial = 0
        self._tag = secrets.token_hex(4)

    # signed webhooks

    def sign(self, path: str, params: dict[str, str]) -> tuple[bytes, str]:
        return urlencode(params).encode(), self.validator.compute_signature(self.base + path, params)

    async def post(self, path: str, body: bytes, signature: str) -> tuple[int, bytes]:
        headers = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
        }
        async with self.session.post(self.base + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def post_params(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        return await self.post(path, *self.sign(path, params))

    def new_sid(self) -> str:
        self._serial += 1
        return f"CA{self._tag}{self._serial:024x}"

    def prepare(self, offset: float) -> Call:
        call = Call(self.new_sid(), self.callers(), offset)
        params = inbound_params(call.sid, call.caller, ACCOUNT_SID)
        call.body, call.signature = self.sign(f"{VOICE}/inbound", params)
        return call

    # agents

    async def sign_in(self, agent: Agent) -> None:
        login = {"login": agent.login, "password": PASSWORD}
        async with self.session.post(f"{self.base}/api/v1/auth/login", json=login) as resp:
            if resp.status != 200:
                raise RuntimeError(f"sign-in of {agent.login} failed: {resp.status} {await resp.text()}")
            body = await resp.json()
            agent.cookie = resp.cookies["cc_session"].value
        agent.csrf, agent.id = body["csrf_token"], body["agent"]["id"]
        agent.ws = await self.session.ws_connect(
            f"{self.base}/ws/agent", headers={"Cookie": f"cc_session={agent.cookie}"}
        )
        hello = await agent.ws.receive_json(timeout=10)
        if hello.get("type") != "hello" or hello.get("agent_id") != agent.id:
            raise RuntimeError(f"unexpected first frame on {agent.login}'s socket: {hello}")
        self.agents[agent.id] = agent
        reader = asyncio.create_task(self.read_socket(agent))
        self.readers.add(reader)
        reader.add_done_callback(self.readers.discard)

    async def set_presence(self, agent: Agent, state: str) -> None:
        headers = {"Cookie": f"cc_session={agent.cookie}", "X-CSRF-Token": agent.csrf}
        async with self.session.put(
            f"{self.base}/api/v1/presence/me", json={"state": state}, headers=headers
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"presence of {agent.login} not set: {resp.status} {await resp.text()}")

    async def read_socket(self, agent: Agent) -> None:
        assert agent.ws is not None
        async for message in agent.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            if not message.data.startswith(POP_PREFIX):
                continue
            frame = json.loads(message.data)
            self.on_pop(agent.id, frame, now)

    def on_pop(self, agent_id: int, frame: dict[str, Any], now: float) -> None:
        call = self.calls.get(frame.get("call_sid", ""))
        if call is None:
            self.on_saturation_pop(agent_id, frame)
            return
        if call.popped:
            self.duplicate_pops += 1
            return
        call.popped, call.pop_agent_id = now, agent_id
        card = frame.get("card") or {}
        call.card_ok = call.caller in (card.get("phones") or [])
        self.spawn(self.agent_takes(call, agent_id))

    def on_saturation_pop(self, agent_id: int, frame: dict[str, Any]) -> None:
        """A pop for no call of the rate steps: a routed saturation's call (checked against the
        client's list afterwards), or unexpected."""
        pops = self.saturation_pops
        if pops is None:
            self.unexpected_pops += 1
            return
        sid = frame.get("call_sid", "")
        if sid in pops:
            self.saturation_duplicate_pops += 1
            return
        pops[sid] = (agent_id, list((frame.get("card") or {}).get("phones") or []))

    def check_saturation_pops(self, routed: Sequence[tuple[str, int, str]]) -> dict[str, int]:
        """Every routed call popped once, on the socket of the agent its TwiML rang, with a card
        holding the caller's number; and no pop for a call that was not routed."""
        pops = dict(self.saturation_pops or {})
        missing = wrong_agent = card_bad = 0
        for sid, agent_id, caller in routed:
            pop = pops.pop(sid, None)
            if pop is None:
                missing += 1
                continue
            wrong_agent += pop[0] != agent_id
            card_bad += caller not in pop[1]
        return {
            "pop_missing": missing,
            "pop_wrong_agent": wrong_agent,
            "card_bad": card_bad,
            "unexpected_pops": len(pops),
            "duplicate_pops": self.saturation_duplicate_pops,
        }

    async def checking_pops(
        self, service_pid: int, saturate_into: Callable[..., Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """A routed saturation (``saturate_into(calls_file=...)``, whose clients list their routed
        calls there) while the agents' sockets record the pops; then the pops checked against it."""
        self.saturation_pops, self.saturation_duplicate_pops = {}, 0
        try:
            with tempfile.TemporaryDirectory(prefix="cc_bench_routed_") as tmp:
                result = await saturate_into(calls_file=os.path.join(tmp, "calls"))
                await self.settle(service_pid)  # the pops of the last calls reach the sockets
                routed = read_routed_calls(Path(tmp))
            result["pop_checks"] = self.check_saturation_pops(routed)
        finally:
            self.saturation_pops = None
        return result

    async def agent_takes(self, call: Call, agent_id: int) -> None:
        """The agent's browser answers at once and the caller hangs up at once: agent free again."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.responded.wait(), DRAIN_S)
        if call.queued:
            self.offers_of_queued_calls += 1
        leg = self.new_sid()
        try:
            leg_status, leg_answer = await self.post_params(
                f"{VOICE}/agent-leg?agent={agent_id}",
                agent_answered_params(leg, call.sid, call.caller, agent_id, ACCOUNT_SID),
            )
            dial_status, dial_answer = await self.post_params(
                f"{VOICE}/dial-action?agent={agent_id}",
                dial_completed_params(leg, call.sid, call.caller, ACCOUNT_SID),
            )
            # The leg's callback gets an empty answer; the dial action, once the call is over, a hang-up.
            if (leg_status, self.answers(leg_answer).kind, dial_status, self.answers(dial_answer).kind) != (
                200,
                "empty",
                200,
                "hangup",
            ):
                self.agent_errors += 1
        except aiohttp.ClientError:
            self.agent_errors += 1
        finally:
            call.done.set()

    async def place(self, call: Call) -> None:
        call.sent = time.perf_counter()
        try:
            call.status, twiml = await self.post(f"{VOICE}/inbound", call.body, call.signature)
        except aiohttp.ClientError as exc:
            call.error = type(exc).__name__
            call.responded.set()
            call.done.set()
            return
        call.answered = time.perf_counter()
        answer = self.answers(twiml) if call.status == 200 else Answer("")
        if answer.kind == "dial":
            call.agent_id = answer.agent_id
        elif answer.kind == "enqueue":
            call.queued = True
        elif call.status == 200:
            # Neither ringing a signed-in agent's browser nor queueing: a wrong answer.
            call.error = f"answered {answer.kind} {answer.why}".strip()
        call.responded.set()
        if call.queued:
            # The caller gives up at once: the benchmark keeps the queue empty.
            with contextlib.suppress(aiohttp.ClientError):
                await self.post_params(f"{VOICE}/status", hung_up_params(call.sid))
        if call.agent_id is None:
            call.done.set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self, service_pid: int, limit_s: float = SETTLE_S) -> float:
        """Wait (bounded) until every call and agent answer is over and the service is idle."""
        t0 = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                while self.tasks:
                    await asyncio.wait(set(self.tasks))
                busy = 1.0
                while busy > 0.05:  # the queue poll alone stays far below 5% of a core
                    cpu0 = process_cpu_s(service_pid)
                    await asyncio.sleep(1.0)
                    busy = process_cpu_s(service_pid) - cpu0
        return time.perf_counter() - t0

    async def step(self, rate: float, duration: float, service_pid: int) -> StepResult:
        """Open loop: calls start on a Poisson schedule whatever happens to the earlier ones."""
        offsets: list[float] = []
        t = self.rng.expovariate(rate)
        while t < duration:
            offsets.append(t)
            t += self.rng.expovariate(rate)
        calls = [self.prepare(offset) for offset in offsets]
        for call in calls:
            self.calls[call.sid] = call
        cpu = CpuMeter(service_pid, self.database)
        cpu.start()
        start = time.perf_counter() + 0.05
        lags: list[float] = []
        for call in calls:
            call.scheduled = start + call.offset
            delay = call.scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append((time.perf_counter() - call.scheduled) * 1000)
            self.spawn(self.place(call))
        # Every call answered and every routed call's agent free again (bounded: a lost pop stays lost).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                await asyncio.gather(*(c.done.wait() for c in calls))
                while self.tasks:
                    await asyncio.wait(set(self.tasks))
        cpu.stop()
        return StepResult(int(rate), calls, duration, cpu, lags)


class Profiler:
    """``--profile DIR``: py-spy samples the service (collapsed stacks, ``DIR/<phase>.txt``)."""

    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory) if directory else None
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))

    @contextlib.asynccontextmanager
    async def record(self, phase: str, pid: int, seconds: float) -> AsyncIterator[None]:
        if self.directory is None or not phase:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{phase}.txt"
        spy = await asyncio.create_subprocess_exec(
            *(self.py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))),
            *("--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(spy.wait(), 60)
            except TimeoutError:
                spy.kill()
                await spy.wait()
            say(f"  profile of the service written to {out}")


# --- saturation ----------------------------------------------------------------------------------


async def saturate(
    name: str,
    *,
    port: int,
    mode: str,
    path: str,
    duration: float,
    procs: int,
    server_pid: int,
    database: str,
    phones_file: str = "",
    distinct: bool = False,
    pool: int = 1,
    concurrency: int = CONCURRENCY,
    expect: str = "",
    expect_body: str = "",
    agent_ids: Sequence[int] = (),
    calls_file: str = "",
) -> dict[str, Any]:
    """Closed loop against one server: ``procs`` client processes, ``concurrency`` requests (or,
    routed, calls) in flight; every answer checked (``expect``, see ``_saturate.py``)."""
    clients = []
    for index in range(procs):
        spec = {
            "host": HOST,
            "port": port,
            "mode": mode,
            "path": path,
            "concurrency": concurrency // procs + (1 if index < concurrency % procs else 0),
            "warmup_s": SATURATION_WARMUP_S,
            "duration_s": duration,
            "auth_token": AUTH_TOKEN,
            "public_base_url": f"http://{HOST}:{port}",
            "phones_file": phones_file,
            "unknown_share": UNKNOWN_SHARE,
            "distinct": distinct,
            "pool": pool,
            "seed": secrets.randbelow(1 << 30),
            "account_sid": ACCOUNT_SID,
            "expect": expect,
            "expect_body": expect_body,
            "agent_ids": list(agent_ids),
            "calls_file": f"{calls_file}.{index}" if calls_file else "",
        }
        clients.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "_saturate.py"),
                json.dumps(spec),
                cwd=REPO,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    try:
        for client in clients:
            assert client.stdout is not None
            line = await asyncio.wait_for(client.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"saturation client for {name} did not start: {line!r}")
        cpu = CpuMeter(server_pid, database)
        for client in clients:
            assert client.stdin is not None
            client.stdin.write(b"go\n")
            await client.stdin.drain()
        await asyncio.sleep(SATURATION_WARMUP_S)
        cpu.start()
        await asyncio.sleep(duration)
        cpu.stop()
        results = []
        for client in clients:
            out, _ = await asyncio.wait_for(client.communicate(), 60)
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for client in clients:
            if client.returncode is None:
                client.kill()
                await client.wait()
    ok = sum(r["ok"] for r in results)
    return {
        "rps": ok / duration,
        "ok": ok,
        "errors": sum(r["errors"] for r in results),
        "mismatches": sum(r["mismatches"] for r in results),
        "mismatch_kinds": merged_counts(r["mismatch_kinds"] for r in results),
        "samples": [sample for r in results for sample in r["samples"]],
        "completed_rps": sum(r["completed"] for r in results) / duration,
        "server_cpu_ms_per_ok": cpu.server_s * 1000 / max(1, ok),
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "server_cpu_util": cpu.server_s / max(1e-9, cpu.wall_s),
        "server_sys_share": cpu.server_sys_s / max(1e-9, cpu.server_s),
        "postgres_cpu_util": cpu.postgres_s / max(1e-9, cpu.wall_s),
        "client_cpu_util": sum(r["cpu_s"] for r in results) / duration,
        "generator_cpu_util": cpu.generator_s / max(1e-9, cpu.wall_s),  # this process: the agents' sockets
        "machine_busy": cpu.machine_busy,
        "other_cores": cpu.others(sum(r["cpu_s"] for r in results)),
        "built_on_the_fly": sum(r["built_on_the_fly"] for r in results),
    }


# --- the run -------------------------------------------------------------------------------------


@contextlib.contextmanager
def phones_sample(rng: random.Random, phones: Sequence[str], k: int) -> Iterator[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="cc_bench_phones_") as fh:
        fh.write("\n".join(rng.sample(list(phones), min(k, len(phones)))))
        fh.flush()
        yield fh.name


async def measure_idle(service_pid: int, database: str) -> CpuMeter:
    """What the idle service costs (its queue poll timer runs every 2 s)."""
    idle = CpuMeter(service_pid, database)
    idle.start()
    await asyncio.sleep(IDLE_S)
    idle.stop()
    say(
        f"idle for {IDLE_S:.0f}s: service CPU {idle.server_s / idle.wall_s:.0%}, "
        f"PostgreSQL {idle.postgres_s / idle.wall_s:.0%}"
    )
    return idle


def fmt_saturation(r: dict[str, Any]) -> str:
    line = (
        f"{r['rps']:,.0f} req/s (p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"{r['errors']} errors of which {r['mismatches']} wrong answers); server CPU "
        f"{r['server_cpu_util']:.0%} ({r['server_sys_share']:.0%} in the kernel), "
        f"PostgreSQL {r['postgres_cpu_util']:.0%}, client CPU {r['client_cpu_util']:.0%}, "
        f"machine {r['machine_busy']:.0%} busy, other processes {r['other_cores']:.2f} cores"
    )
    if "pop_checks" in r:
        line += (
            f"; {r['completed_rps']:,.0f} calls/s completed; agents' sockets CPU "
            f"{r['generator_cpu_util']:.0%}; pops {r['pop_checks']}"
        )
    for kind, count in r["mismatch_kinds"].items():
        line += f"\n    {count} x {kind}"
    for sample in r["samples"]:
        line += f"\n    e.g. {sample}"
    return line


def read_routed_calls(directory: Path) -> list[tuple[str, int, str]]:
    """The (CallSid, agent, caller) lists the routed saturation's clients wrote into ``directory``."""
    return [
        (sid, int(agent), caller)
        for listing in sorted(directory.iterdir())
        for sid, agent, caller in (line.split() for line in listing.read_text().splitlines())
    ]


def merged_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for each in counts:
        for key, count in each.items():
            merged[key] = merged.get(key, 0) + count
    return merged


def fmt_step(s: dict[str, Any]) -> str:
    return (
        f"{s['calls']} calls ({s['achieved_rate']:.1f}/s), {s['routed']} routed, {s['queued']} queued, "
        f"{s['unanswered']} unanswered; "
        f"pop p50 {s['pop_p50_ms']:.1f} p99 {s['pop_p99_ms']:.1f} ms; webhook p50 "
        f"{s['webhook_p50_ms']:.1f} p99 {s['webhook_p99_ms']:.1f} ms; service CPU "
        f"{s['service_cpu_ms_per_call']:.1f} ms/call ({s['service_cpu_util']:.0%}), PostgreSQL "
        f"{s['postgres_cpu_ms_per_call']:.1f} ms/call; generator CPU {s['generator_cpu_util']:.0%}; "
        f"machine {s['machine_busy']:.0%} busy, other processes {s['other_cores']:.2f} cores; "
        f"schedule lag p99 {s['schedule_lag_p99_ms']:.1f} ms"
    )


async def run_benchmark(
    args: argparse.Namespace, db_url: URL, phones: Sequence[str], logins: Sequence[str]
) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    step_s = QUICK_STEP_S if args.quick else STEP_S
    saturation_s = QUICK_SATURATION_S if args.quick else SATURATION_S
    redis_url = os.environ.get("REDIS_URL", "")
    redis_prefix = f"ccbench_{secrets.token_hex(4)}:"
    rest = FakeTwilioRest()
    port, bare_port, floor_port = free_port(), free_port(), free_port()
    profiled = ["-m", "cProfile", "-o", os.path.join(os.getcwd(), args.cprofile)] if args.cprofile else []
    service = Server(
        "service",
        [sys.executable, *profiled, "-m", "contact_center.cli", "serve", "--no-migrate"],
        port,
        service_env(db_url, port, await rest.start(), redis_url, redis_prefix),
    )
    script = str(HERE / "_floor_server.py")
    bare = Server(
        "bare server", [sys.executable, script, "--mode", "bare", "--port", str(bare_port)], bare_port
    )
    floor = Server(
        "floor server",
        [sys.executable, script, "--mode", "floor", "--port", str(floor_port), "--auth-token", AUTH_TOKEN],
        floor_port,
    )
    figures: dict[str, Any] = {}
    profiler = Profiler(args.profile)
    database = db_url.database or ""
    connector = aiohttp.TCPConnector(limit=1000)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    twilio = Twilio(session, port, phones, args.seed + 2, database)
    try:
        bus = f"Redis, key prefix {redis_prefix}" if redis_url else "in-process bus"
        say(f"starting the service on port {port} ({bus})")
        await service.start("/readyz")
        agents = [Agent(login) for login in logins]
        await asyncio.gather(*(twilio.sign_in(a) for a in agents))
        await asyncio.gather(*(twilio.set_presence(a, "available") for a in agents))
        say(f"{len(agents)} agents signed in, sockets open, available")

        steps: dict[int, dict[str, Any]] = {}
        for rate in () if args.saturation_only else RATES:
            if rate == RATES[0]:
                warmup_s = QUICK_WARMUP_S if args.quick else WARMUP_S
                say(f"warm-up: {WARMUP_RATE} calls/s for {warmup_s:.0f}s (not counted)")
                warm = (await twilio.step(WARMUP_RATE, warmup_s, service.pid)).summary()
                say(f"  {fmt_step(warm)}")
            await twilio.settle(service.pid)
            say(f"{rate} calls/s for {step_s:.0f}s")
            async with profiler.record(f"step_{rate}", service.pid, step_s):
                result = await twilio.step(rate, step_s, service.pid)
            steps[rate] = result.summary()
            if args.calls_csv:
                result.write_csv(args.calls_csv, append=rate != RATES[0])
            say(f"  {fmt_step(steps[rate])}")

        # An overloaded step leaves a backlog: let the service work it off before going on.
        waited = await twilio.settle(service.pid)
        say(f"backlog worked off in {waited:.0f}s")
        await bare.start("/")
        await floor.start(f"{VOICE}/inbound", need_ok=False)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SATURATED}
        with phones_sample(rng, phones, 100_000) as phones_file:
            procs = args.client_procs
            handlers: dict[str, dict[str, Any]] = {
                "bare": {
                    "port": bare_port,
                    "mode": "get",
                    "path": "/",
                    "server_pid": bare.pid,
                    "expect": "body",
                    "expect_body": "ok",
                },
                "floor": {
                    "port": floor_port,
                    "mode": "signed",
                    "path": f"{VOICE}/inbound",
                    "server_pid": floor.pid,
                    "pool": 20_000 // procs,
                    "expect": "body",
                    "expect_body": FIXED_TWIML.replace("{base}", f"http://{HOST}:{floor_port}"),
                },
                "routed_webhook": {
                    "port": port,
                    "mode": "routed",
                    "path": f"{VOICE}/inbound",
                    "server_pid": service.pid,
                    "phones_file": phones_file,
                    "distinct": True,
                    "pool": int(500 * (saturation_s + SATURATION_WARMUP_S)) // procs,
                    "concurrency": ROUTED_CONCURRENCY,
                    "agent_ids": sorted(twilio.agents),
                },
                "webhook": {
                    "port": port,
                    "mode": "signed",
                    "path": f"{VOICE}/inbound",
                    "server_pid": service.pid,
                    "phones_file": phones_file,
                    "distinct": True,  # every request its own CallSid: nothing is deduplicated
                    "pool": int(1_500 * (saturation_s + SATURATION_WARMUP_S)) // procs,
                    "expect": "enqueue",
                },
            }
            for phase_no, order in enumerate(SATURATION_PHASES):
                if phase_no == 1:
                    # The queued path: the agents go away, so that every call finds nobody and queues.
                    await asyncio.gather(*(twilio.set_presence(a, "away") for a in agents))
                    idle = await measure_idle(service.pid, database)
                for name in order:
                    seconds = saturation_s + SATURATION_WARMUP_S + 2
                    run_no = len(runs[name]) + 1
                    phase = f"{name}_{run_no}" if name in ("webhook", "routed_webhook") else ""
                    run = functools.partial(
                        saturate,
                        name,
                        duration=saturation_s,
                        procs=procs,
                        database=database,
                        **handlers[name],
                    )
                    async with profiler.record(phase, service.pid, seconds):
                        if name == "routed_webhook":
                            saturation = await twilio.checking_pops(service.pid, run)
                        else:
                            saturation = await run()
                    runs[name].append(saturation)
                    say(f"  {name} run {run_no}: {fmt_saturation(saturation)}")
        try:
            facts = await queue_facts(db_url)
        except (asyncpg.PostgresError, KeyError, IndexError, ValueError) as exc:  # a diagnostic only
            say(f"could not look at the queue poll: {exc!r}")
            facts = {}
        if facts:
            say(f"one queue poll: {facts['queue_poll_ms']} ms ({facts['queue_poll_plan']})")
    finally:
        await session.close()
        for server in (service, bare, floor):
            await server.stop()
        await rest.stop()
        if redis_url:
            await delete_redis_keys(redis_url, redis_prefix)

    for rate, s in steps.items():
        figures[f"pop_p50_ms_{rate}"] = round(s["pop_p50_ms"], 2)
        figures[f"pop_p99_ms_{rate}"] = round(s["pop_p99_ms"], 2)
        figures[f"webhook_p99_ms_{rate}"] = round(s["webhook_p99_ms"], 2)
    rps = {name: sum(r["rps"] for r in rs) / len(rs) for name, rs in runs.items()}
    figures.update(
        {
            "bare_rps": round(rps["bare"]),
            "floor_rps": round(rps["floor"]),
            "webhook_rps": round(rps["webhook"]),
            "throughput_ratio": round(rps["webhook"] / rps["floor"], 3),
            "routed_webhook_rps": round(rps["routed_webhook"]),
            "routed_throughput_ratio": round(rps["routed_webhook"] / rps["floor"], 3),
        }
    )
    for rate, s in steps.items():
        figures[f"webhook_p50_ms_{rate}"] = round(s["webhook_p50_ms"], 2)
        figures[f"pop_max_ms_{rate}"] = round(s["pop_max_ms"], 2)
        figures[f"calls_{rate}"] = s["calls"]
        figures[f"routed_{rate}"] = s["routed"]
        figures[f"queued_{rate}"] = s["queued"]
        figures[f"unanswered_{rate}"] = s["unanswered"]
        figures[f"errors_{rate}"] = s["errors"] + s["pop_missing"] + s["pop_wrong_agent"] + s["card_bad"]
        figures[f"service_cpu_ms_per_call_{rate}"] = round(s["service_cpu_ms_per_call"], 2)
        figures[f"postgres_cpu_ms_per_call_{rate}"] = round(s["postgres_cpu_ms_per_call"], 2)
        figures[f"machine_busy_{rate}"] = round(s["machine_busy"], 2)
    for name, rs in runs.items():
        figures[f"{name}_rps_runs"] = [round(r["rps"]) for r in rs]
        figures[f"{name}_server_cpu_util"] = round(statistics.mean(r["server_cpu_util"] for r in rs), 2)
        figures[f"{name}_server_sys_share"] = round(statistics.mean(r["server_sys_share"] for r in rs), 2)
        figures[f"{name}_client_cpu_util"] = round(statistics.mean(r["client_cpu_util"] for r in rs), 2)
        figures[f"{name}_errors"] = sum(r["errors"] for r in rs)
        figures[f"{name}_mismatches"] = sum(r["mismatches"] for r in rs)
        figures[f"{name}_mismatch_kinds"] = merged_counts(r["mismatch_kinds"] for r in rs)
    for name in ("webhook", "routed_webhook"):
        figures[f"{name}_postgres_cpu_util"] = round(
            statistics.mean(r["postgres_cpu_util"] for r in runs[name]), 2
        )
    figures["webhook_service_cpu_ms_per_request"] = round(
        statistics.mean(r["server_cpu_ms_per_ok"] for r in runs["webhook"]), 3
    )
    routed = runs["routed_webhook"]
    pop_checks = merged_counts(r["pop_checks"] for r in routed)
    figures.update(
        {
            "routed_webhook_service_cpu_ms_per_call": round(
                statistics.mean(r["server_cpu_ms_per_ok"] for r in routed), 3
            ),
            "routed_webhook_calls_completed_rps": round(statistics.mean(r["completed_rps"] for r in routed)),
            "routed_webhook_sockets_cpu_util": round(
                statistics.mean(r["generator_cpu_util"] for r in routed), 2
            ),
            "routed_webhook_pop_checks": pop_checks,
            "routed_webhook_pop_errors": sum(pop_checks.values()),
            "routed_concurrency": ROUTED_CONCURRENCY,
        }
    )
    figures.update(
        {
            "idle_service_cpu_util": round(idle.server_s / idle.wall_s, 3),
            "idle_postgres_cpu_util": round(idle.postgres_s / idle.wall_s, 3),
            **facts,
            "unexpected_pops": twilio.unexpected_pops,
            "duplicate_pops": twilio.duplicate_pops,
            "offers_of_queued_calls": twilio.offers_of_queued_calls,
            "redirects": rest.redirects,
            "agent_errors": twilio.agent_errors,
            "target_pop_p99_met": figures.get("pop_p99_ms_100", float("inf")) < POP_P99_TARGET_MS,
            "target_throughput_ratio_met": figures["throughput_ratio"] >= RATIO_TARGET,
        }
    )
    return figures


# What CallQueue._offer_longest_waiting asks the database on every queue poll (every
# voice.queue_poll_seconds on every instance, and whenever an agent becomes available).
QUEUE_POLL_SQL = """
SELECT id FROM interactions
 WHERE channel = 'voice' AND status = 'queued-for-agent'
 ORDER BY started_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""


async def queue_facts(db_url: URL) -> dict[str, Any]:
    """Queued calls left after the saturation, and the cost and plan of one queue poll."""
    conn = await asyncpg.connect(admin_dsn(db_url))
    try:
        queued = await conn.fetchval(
            "SELECT count(*) FROM interactions WHERE channel = 'voice' AND status = 'queued-for-agent'"
        )
        interactions = await conn.fetchval("SELECT count(*) FROM interactions")
        async with conn.transaction():
            plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {QUEUE_POLL_SQL}")
        doc = json.loads(plan)[0] if isinstance(plan, str) else plan[0]
        nodes, node = [], doc["Plan"]
        while True:
            on = node.get("Index Name") or node.get("Relation Name")
            found = f", {node['Actual Rows']:,} rows" if "Index Name" in node else ""
            nodes.append(node["Node Type"] + (f" ({on}{found})" if on else ""))
            if not node.get("Plans"):
                break
            node = node["Plans"][0]
        return {
            "queued_after_saturation": int(queued),
            "interactions": int(interactions),
            "queue_poll_ms": round(doc["Execution Time"], 1),
            "queue_poll_plan": " > ".join(nodes),
        }
    finally:
        await conn.close()


async def delete_redis_keys(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
        say(f"deleted {len(keys)} Redis keys under {prefix}")
    finally:
        await redis.aclose()


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    # SIGTERM (and SIGINT, even where a background shell ignores it) cancel the run, so that the
    # child processes are stopped and the database is dropped.
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100k customers, 10 s per rate, 5 s saturations")
    parser.add_argument("--seed", type=int, default=20261124, help="random seed for data and calls")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="saturation client processes (64 requests in flight in all)",
    )
    parser.add_argument("--profile", metavar="DIR", help="sample the service with py-spy into DIR")
    parser.add_argument(
        "--saturation-only", action="store_true", help="skip the call rates: only the saturations"
    )
    parser.add_argument(
        "--cprofile", metavar="FILE", help="run the service under cProfile, its statistics into FILE"
    )
    parser.add_argument("--calls-csv", metavar="FILE", help="write every call's timings to FILE")
    args = parser.parse_args(argv)

    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    n = QUICK_CUSTOMERS if args.quick else N_CUSTOMERS
    name = f"cc_bench_{secrets.token_hex(4)}"
    db_url = base.set(database=name)
    created = False
    load_before = os.getloadavg()
    try:
        say(f"creating database {name}")
        await create_database(base, name)
        created = True
        engine = create_engine(db_url.render_as_string(hide_password=False))
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
        t0 = time.perf_counter()
        phones = await load(db_url, n, Generator(random.Random(args.seed), datetime.now(UTC)))
        logins = await make_agents(db_url, Argon2Hasher(1, 8).hash(PASSWORD))
        load_s = time.perf_counter() - t0
        say(f"loaded {n:,} customers and {len(logins)} agents in {load_s:.1f}s")
        figures = await run_benchmark(args, db_url, phones, logins)
    finally:
        if created:
            await drop_database(base, name)
            say(f"dropped database {name}")
    load_after = os.getloadavg()
    figures.update(
        {
            "n_customers": n,
            "n_agents": N_AGENTS,
            "quick": args.quick,
            "step_s": QUICK_STEP_S if args.quick else STEP_S,
            "saturation_s": (QUICK_SATURATION_S if args.quick else SATURATION_S) * RUNS_PER_HANDLER,
            "concurrency": CONCURRENCY,
            "client_procs": args.client_procs,
            "bus": "redis" if os.environ.get("REDIS_URL") else "in-process",
            "load_s": round(load_s, 1),
            "cpus": os.cpu_count(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(load_after[0], 2),
        }
    )
    return figures


def json_safe(value: Any) -> Any:
    """NaN (no sample) becomes null, so that the last line is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    return value


if __name__ == "__main__":
    try:
        figures = asyncio.run(main())
    except asyncio.CancelledError:
        say("interrupted; child processes stopped and database dropped")
        sys.exit(130)
    sys.stdout.write(json.dumps({k: json_safe(v) for k, v in figures.items()}) + "\n")
