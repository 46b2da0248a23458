"""Closed-loop HTTP/1.1 load for ``screen_pop.py``'s saturation runs, one client process.

    python benchmarks/_saturate.py SPEC_JSON

The parent starts one or more of these, each with a JSON spec (see :class:`Spec`). A client builds
its requests, opens ``concurrency`` keep-alive connections, prints ``ready`` and waits for a line on
stdin; it then keeps exactly one request in flight per connection (a new one is written the moment
the previous answer is complete) for ``warmup_s + duration_s`` seconds and prints one JSON line:
the answers completed inside the timed window (after the warm-up), their latencies and the
client's own CPU time in it. The client is a bare ``asyncio.Protocol`` writing prebuilt request
bytes and reading ``Content-Length`` bodies, so that it costs the machine as little as possible:
an aiohttp ``ClientSession`` spends several times more CPU per request than the handlers measured.

Signed requests are Twilio's inbound-call form (the parameters Twilio sends, signed with
``RequestValidator`` for ``public_base_url`` + path). ``distinct`` gives every request its own
CallSid (built ahead up to ``pool`` requests, then on the fly); otherwise the pool is cycled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

AREAS_UNKNOWN = (206, 303)  # area codes the loader never uses: callers nobody knows
EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11)
TWILIO_NUMBER = "+15005550006"


@dataclass
class Spec:
    host: str
    port: int
    mode: str  # "get" or "signed"
    path: str
    concurrency: int
    warmup_s: float
    duration_s: float
    auth_token: str = ""
    public_base_url: str = ""
    phones_file: str = ""
    unknown_share: float = 0.0
    distinct: bool = False
    pool: int = 20_000
    seed: int = 0
    account_sid: str = "AC" + "0" * 32


def inbound_params(call_sid: str, caller: str, account_sid: str) -> dict[str, str]:
    """The form Twilio posts to a number's voice URL when a call comes in."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "CallToken": "%7B%22parentCallInfoToken%22%3A%22eyJhbGciOiJFUzI1NiJ9%22%7D",
        "Called": TWILIO_NUMBER,
        "CalledCity": "",
        "CalledCountry": "US",
        "CalledState": "",
        "CalledZip": "",
        "Caller": caller,
        "CallerCity": "",
        "CallerCountry": "US",
        "CallerState": "",
        "CallerZip": "",
        "Direction": "inbound",
        "From": caller,
        "FromCity": "",
        "FromCountry": "US",
        "FromState": "",
        "FromZip": "",
        "To": TWILIO_NUMBER,
        "ToCity": "",
        "ToCountry": "US",
        "ToState": "",
        "ToZip": "",
    }


def unknown_number(rng: random.Random) -> str:
    return f"+1{rng.choice(AREAS_UNKNOWN)}{rng.choice(EXCHANGES)}{rng.randrange(10_000):04d}"


class CallerPicker:
    """Random loaded customers' phones, and a share of numbers nobody knows."""

    def __init__(self, phones: list[str], unknown_share: float, rng: random.Random) -> None:
        self.phones, self.unknown_share, self.rng = phones, unknown_share, rng

    def __call__(self) -> str:
        if not self.phones or self.rng.random() < self.unknown_share:
            return unknown_number(self.rng)
        return self.rng.choice(self.phones)


def signed_post(host: str, port: int, path: str, body: str, signature: str) -> bytes:
    """A form POST with the headers Twilio's webhook requests carry."""
    raw = body.encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: TwilioProxy/1.1\r\n"
        "Accept: */*\r\n"
        "Cache-Control: max-age=259200\r\n"
        f"I-Twilio-Idempotency-Token: {secrets.token_hex(16)}\r\n"
        f"X-Twilio-Signature: {signature}\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


class Requests:
    """The request bytes to send next."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.index = 0
        self.built_on_the_fly = 0
        if spec.mode == "get":
            self.pool = [f"GET {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n\r\n".encode()]
            self.make: Callable[[], bytes] | None = None
            return
        rng = random.Random(spec.seed)
        phones: list[str] = []
        if spec.phones_file:
            with open(spec.phones_file) as fh:
                phones = [line.strip() for line in fh if line.strip()]
        caller = CallerPicker(phones, spec.unknown_share, rng)
        validator = RequestValidator(spec.auth_token)
        url = spec.public_base_url.rstrip("/") + spec.path
        tag = secrets.token_hex(4)  # unique per client process and run: no CallSid is ever repeated
        serial = iter(range(1 << 62))

        def make() -> bytes:
            sid = f"CA{tag}{next(serial):024x}"
            params = inbound_params(sid, caller(), spec.account_sid)
            signature = validator.compute_signature(url, params)
            return signed_post(spec.host, spec.port, spec.path, urlencode(params), signature)

        self.make = make
        self.pool = [make() for _ in range(spec.pool)]

    def next(self) -> bytes:
        if self.index < len(self.pool):
            request = self.pool[self.index]
            self.index += 1
            return request
        if self.make is None or not self.spec.distinct:
            self.index = 1
            return self.pool[0]
        self.built_on_the_fly += 1
        return self.make()


@dataclass
class Tally:
    window_start: float = 0.0
    window_end: float = 0.0
    running: bool = True
    ok: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0

    def record(self, status: bytes, started: float, ended: float) -> None:
        if not self.window_start <= ended < self.window_end:
            return
        code = status.decode()
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if code.startswith("2"):
            self.ok += 1
            self.latencies_ms.append((ended - started) * 1000)
        else:
            self.errors += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, requests: Requests, tally: Tally) -> None:
        self.requests, self.tally = requests, tally
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need: int | None = None
        self.status = b""
        self.started = 0.0
        self.in_flight = False
        loop = asyncio.get_running_loop()
        self.stopped = loop.create_future()  # no request in flight and none will be sent
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        if not self.tally.running or self.transport is None or self.transport.is_closing():
            self._stop()
            return
        self.in_flight = True
        self.tally.sent += 1
        self.started = time.perf_counter()
        self.transport.write(self.requests.next())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                self.status = head[9:12]
                at = head.find(b"\r\ncontent-length:")
                length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
                self.need = end + 4 + length
            if len(self.buffer) < self.need:
                return
            self.buffer = self.buffer[self.need :]
            self.need = None
            self.tally.record(self.status, self.started, time.perf_counter())
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.tally.errors += 1
        self._stop()
        if not self.lost.done():
            self.lost.set_result(None)

    def _stop(self) -> None:
        self.in_flight = False
        if not self.stopped.done():
            self.stopped.set_result(None)


async def run(spec: Spec) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    requests = Requests(spec)
    build_s = time.perf_counter() - t0
    tally = Tally()
    connections: list[Connection] = []
    for _ in range(spec.concurrency):
        _, protocol = await loop.create_connection(lambda: Connection(requests, tally), spec.host, spec.port)
        connections.append(protocol)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)

    start = time.perf_counter()
    tally.window_start = start + spec.warmup_s
    tally.window_end = tally.window_start + spec.duration_s
    for conn in connections:
        conn.send()
    await asyncio.sleep(spec.warmup_s)
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, tally.window_end - time.perf_counter()))
    cpu1 = time.process_time()
    tally.running = False
    # Wait (bounded) for the answers still in flight, then close.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.stopped for c in connections)), 10)
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.gather(*(c.lost for c in connections))
    lat = sorted(tally.latencies_ms)
    pct = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [0.0] * 99
    return {
        "ok": tally.ok,
        "errors": tally.errors,
        "statuses": tally.statuses,
        "rps": tally.ok / spec.duration_s,
        "p50_ms": pct[49],
        "p99_ms": pct[98],
        "cpu_s": cpu1 - cpu0,
        "window_s": spec.duration_s,
        "sent": tally.sent,
        "build_s": build_s,
        "built_on_the_fly": requests.built_on_the_fly,
        "pool": len(requests.pool),
    }


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    result = asyncio.run(run(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
