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

Every answer is checked, not only its status: ``expect`` ``body`` wants exactly ``expect_body``;
``enqueue`` wants TwiML queueing the caller (:func:`read_twiml`, against the URLs the service must
give under ``public_base_url``). A 2xx with another body is a *mismatch*: counted among the errors
and by kind, never as a success.

Modes:

- ``get``: ``GET path``.
- ``signed``: Twilio's inbound-call form (the parameters Twilio sends, signed with
  ``RequestValidator`` for ``public_base_url`` + path). ``distinct`` gives every request its own
  CallSid (built ahead up to ``pool`` requests, then on the fly); otherwise the pool is cycled.
- ``routed``: each connection plays whole calls, one after the other, as Twilio and an agent who
  answers at once would: the inbound-call webhook (distinct CallSids), which must ring one signed-in
  agent's browser (``<Dial>`` to ``<Client>agent-N</Client>`` with that agent's action and
  status-callback URLs, N in ``agent_ids``); then the agent leg ``in-progress`` (answered) and the
  dial action ``completed`` (the call is over, the agent free again), each built and signed when
  its call's agent is known. An agent named while this process still holds them on another call
  (answered, dial action not yet sent) is a mismatch (``double-booked``); a caller queued instead
  is a mismatch too, and hangs up at once (``status`` ``completed``). The successes are the calls
  routed inside the window; ``completed`` counts the calls whose dial action was answered there.
  Every routed call (CallSid, agent, caller) is written to ``calls_file`` at the end, so that the
  parent can check that the screen-pop reached that agent's socket with the caller's card. A call
  under way when the window closes is played to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

from twilio.request_validator import RequestValidator

AREAS_UNKNOWN = (206, 303)  # area codes the loader never uses: callers nobody knows
EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11)
TWILIO_NUMBER = "+15005550006"
VOICE_PREFIX = "/twilio/voice"
SAMPLES = 3  # mismatching answers kept (truncated) to show what came back
AGENT_RE = re.compile(r"agent-(\d+)")


@dataclass
class Spec:
    host: str
    port: int
    mode: str  # "get", "signed" or "routed"
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
    expect: str = ""  # "" (any 2xx), "body" (exactly expect_body) or "enqueue" (TwiML queueing)
    expect_body: str = ""
    agent_ids: list[int] = field(default_factory=list)  # routed: the agents a call may ring
    calls_file: str = ""  # routed: where to write "CallSid agent caller" of every routed call


# --- what Twilio sends ---------------------------------------------------------------------------


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


def agent_answered_params(
    leg_sid: str, call_sid: str, caller: str, agent_id: int, account_sid: str
) -> dict[str, str]:
    """The agent leg's status callback when the agent picks up (``agent-leg?agent=N``)."""
    return {
        "AccountSid": account_sid,
        "CallSid": leg_sid,
        "ParentCallSid": call_sid,
        "CallStatus": "in-progress",
        "Direction": "outbound-dial",
        "From": caller,
        "To": f"client:agent-{agent_id}",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
    }


def dial_completed_params(leg_sid: str, call_sid: str, caller: str, account_sid: str) -> dict[str, str]:
    """The ``<Dial>`` action once the agent's leg has ended (``dial-action?agent=N``)."""
    return {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "DialCallSid": leg_sid,
        "DialCallStatus": "completed",
        "DialCallDuration": "1",
        "From": caller,
        "To": TWILIO_NUMBER,
    }


def hung_up_params(call_sid: str) -> dict[str, str]:
    """The call's final status callback: the caller hung up (``status``)."""
    return {"CallSid": call_sid, "CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "1"}


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


# --- what the service answers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What a TwiML answer tells Twilio to do."""

    kind: str  # "dial" (ring one agent's browser), "enqueue", "hangup", "empty" or "unexpected"
    agent_id: int | None = None
    why: str = ""  # for "unexpected"


def read_twiml(body: bytes | str, public_base_url: str) -> Answer:
    """Parse a voice webhook's TwiML and check it against the URLs the service must give under
    ``public_base_url``: ``<Dial>`` with its action ``dial-action?agent=N`` ringing only
    ``<Client>agent-N</Client>`` with the status callback ``agent-leg?agent=N`` (answered and
    completed), ``<Enqueue>`` into a named queue with its action and wait URLs, ``<Hangup>``, or no
    verb at all (``<Say>`` may come first). Anything else is "unexpected", with the reason."""
    base = public_base_url.rstrip("/") + VOICE_PREFIX
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        return Answer("unexpected", why=f"not XML ({exc})")
    if root.tag != "Response":
        return Answer("unexpected", why=f"root <{root.tag}>")
    verbs = [element for element in root if element.tag != "Say"]
    if not verbs:
        return Answer("empty")
    if len(verbs) > 1:
        return Answer("unexpected", why="several verbs: " + " ".join(f"<{v.tag}>" for v in verbs))
    verb = verbs[0]
    if verb.tag == "Hangup":
        return Answer("hangup")
    if verb.tag == "Enqueue":
        if not (verb.text or "").strip():
            return Answer("unexpected", why="<Enqueue> names no queue")
        if verb.get("action") != f"{base}/enqueue-action" or verb.get("waitUrl") != f"{base}/queue-wait":
            return Answer("unexpected", why="<Enqueue> with other action or wait URLs")
        return Answer("enqueue")
    if verb.tag == "Dial":
        return _read_dial(verb, base)
    return Answer("unexpected", why=f"<{verb.tag}>")


def _read_dial(dial: ElementTree.Element, base: str) -> Answer:
    nouns = list(dial)
    if len(nouns) != 1 or nouns[0].tag != "Client":
        return Answer("unexpected", why="<Dial> rings other than one browser")
    client = nouns[0]
    match = AGENT_RE.fullmatch((client.text or "").strip())
    if match is None:
        return Answer("unexpected", why=f"<Client>{client.text}</Client>")
    agent = int(match[1])
    if dial.get("action") != f"{base}/dial-action?agent={agent}":
        return Answer("unexpected", why=f"<Dial> action {dial.get('action')} for agent-{agent}")
    if client.get("statusCallback") != f"{base}/agent-leg?agent={agent}":
        return Answer("unexpected", why=f"status callback {client.get('statusCallback')} for agent-{agent}")
    if not {"answered", "completed"} <= set((client.get("statusCallbackEvent") or "").split()):
        return Answer("unexpected", why="the agent leg does not report answered and completed")
    return Answer("dial", agent)


class AnswerReader:
    """:func:`read_twiml`, each distinct body parsed once (the service's answers repeat)."""

    def __init__(self, public_base_url: str) -> None:
        self.base = public_base_url
        self._seen: dict[bytes, Answer] = {}

    def __call__(self, body: bytes) -> Answer:
        answer = self._seen.get(body)
        if answer is None:
            answer = read_twiml(body, self.base)
            if len(self._seen) < 10_000:
                self._seen[body] = answer
        return answer


# --- the load ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    raw: bytes
    call_sid: str = ""
    caller: str = ""


class Requests:
    """The request to send next (with the CallSid and caller of a signed one)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.index = 0
        self.built_on_the_fly = 0
        self.serial: Iterator[int] = iter(range(1 << 62))
        self.tag = secrets.token_hex(4)  # unique per client process and run: no CallSid is ever repeated
        self.validator = RequestValidator(spec.auth_token)
        if spec.mode == "get":
            get = f"GET {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n\r\n"
            self.pool = [Outgoing(get.encode())]
            self.make: Callable[[], Outgoing] | None = None
            return
        rng = random.Random(spec.seed)
        phones: list[str] = []
        if spec.phones_file:
            with open(spec.phones_file) as fh:
                phones = [line.strip() for line in fh if line.strip()]
        caller = CallerPicker(phones, spec.unknown_share, rng)

        def make() -> Outgoing:
            sid, number = self.new_sid(), caller()
            raw = self.signed(spec.path, inbound_params(sid, number, spec.account_sid))
            return Outgoing(raw, sid, number)

        self.make = make
        self.pool = [make() for _ in range(spec.pool)]

    def new_sid(self) -> str:
        return f"CA{self.tag}{next(self.serial):024x}"

    def signed(self, path_qs: str, params: dict[str, str]) -> bytes:
        """A signed form POST to ``path_qs`` (the signature covers the path and query)."""
        url = self.spec.public_base_url.rstrip("/") + path_qs
        signature = self.validator.compute_signature(url, params)
        return signed_post(self.spec.host, self.spec.port, path_qs, urlencode(params), signature)

    def next(self) -> Outgoing:
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
    errors: int = 0  # every failure: a status other than 2xx, a mismatch, a connection lost
    mismatches: int = 0  # 2xx with an answer other than the one expected
    mismatch_kinds: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    completed: int = 0  # routed: calls whose dial action was answered as expected

    def in_window(self, ended: float) -> bool:
        return self.window_start <= ended < self.window_end

    def record(self, status: bytes, problem: str, body: bytes, started: float, ended: float) -> bool:
        """Count one answer (when inside the window); True when it is a success."""
        code = status.decode()
        good = code.startswith("2") and not problem
        if not self.in_window(ended):
            return good
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if good:
            self.ok += 1
            self.latencies_ms.append((ended - started) * 1000)
        else:
            self.errors += 1
            if code.startswith("2"):
                self.mismatch(problem, body)
        return good

    def mismatch(self, kind: str, body: bytes) -> None:
        self.mismatches += 1
        self.mismatch_kinds[kind] = self.mismatch_kinds.get(kind, 0) + 1
        if len(self.samples) < SAMPLES:
            self.samples.append(f"{kind}: {body[:300].decode(errors='replace')}")


class Checker:
    """What a 2xx answer must be in the simple modes: '' when it is, else the mismatch's kind."""

    def __init__(self, spec: Spec) -> None:
        self.expect = spec.expect
        self.body = spec.expect_body.encode()
        self.answers = AnswerReader(spec.public_base_url)

    def __call__(self, body: bytes) -> str:
        if self.expect == "body":
            return "" if body == self.body else "other body"
        if self.expect == "enqueue":
            answer = self.answers(body)
            return "" if answer.kind == "enqueue" else _kind(answer)
        return ""


def _kind(answer: Answer) -> str:
    if answer.kind == "unexpected":
        return f"unexpected TwiML: {answer.why}"
    return {"dial": "routed", "enqueue": "queued"}.get(answer.kind, answer.kind)


class Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, requests: Requests, tally: Tally, check: Checker) -> None:
        self.requests, self.tally, self.check = requests, tally, check
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.need: int | None = None
        self.body_at = 0
        self.status = b""
        self.started = 0.0
        self.in_flight = False
        loop = asyncio.get_running_loop()
        self.stopped = loop.create_future()  # no request in flight and none will be sent
        self.lost = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def may_send(self) -> bool:
        return self.tally.running

    def send(self, request: bytes | None = None) -> None:
        if self.transport is None or self.transport.is_closing() or (request is None and not self.may_send()):
            self._stop()
            return
        self.in_flight = True
        self.tally.sent += 1
        self.started = time.perf_counter()
        self.transport.write(request if request is not None else self.first_request())

    def first_request(self) -> bytes:
        return self.requests.next().raw

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
                self.body_at = end + 4
                self.need = self.body_at + length
            if len(self.buffer) < self.need:
                return
            body = self.buffer[self.body_at : self.need]
            self.buffer = self.buffer[self.need :]
            self.need = None
            self.in_flight = False
            self.answered(self.status, body, time.perf_counter())

    def answered(self, status: bytes, body: bytes, ended: float) -> None:
        problem = self.check(body) if status.startswith(b"2") else ""
        self.tally.record(status, problem, body, self.started, ended)
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


@dataclass
class RoutedCalls:
    """What the routed connections of this process share: who is on a call, and every routed call."""

    agent_ids: frozenset[int]
    held: dict[int, str] = field(default_factory=dict)  # agent -> the CallSid they are on
    routed: list[tuple[str, int, str]] = field(default_factory=list)  # CallSid, agent, caller

    def write(self, path: str) -> None:
        with open(path, "w") as fh:
            fh.writelines(f"{sid} {agent} {caller}\n" for sid, agent, caller in self.routed)


class CallConnection(Connection):
    """``routed`` mode: whole calls, one after the other (see the module's docstring)."""

    def __init__(self, requests: Requests, tally: Tally, check: Checker, calls: RoutedCalls) -> None:
        super().__init__(requests, tally, check)
        self.calls = calls
        self.stage = "inbound"
        self.call = Outgoing(b"")
        self.agent_id = 0
        self.leg_sid = ""

    def first_request(self) -> bytes:
        self.stage = "inbound"
        self.call = self.requests.next()
        return self.call.raw

    def answered(self, status: bytes, body: bytes, ended: float) -> None:
        getattr(self, f"_after_{self.stage}")(status, body, ended)

    def _after_inbound(self, status: bytes, body: bytes, ended: float) -> None:
        answer = self.check.answers(body) if status.startswith(b"2") else Answer("")
        problem = _kind(answer) if answer.kind != "dial" else ""
        agent = answer.agent_id
        if agent is not None and agent not in self.calls.agent_ids:
            problem = f"rings agent-{agent}, not a signed-in agent"
        elif agent is not None and agent in self.calls.held:
            problem = "double-booked"  # that agent is still on another call of ours
        self.tally.record(status, problem, body, self.started, ended)
        if answer.kind == "enqueue":
            # The caller hangs up at once, so that the queue does not carry over.
            self.stage = "hangup"
            self.send(self.requests.signed(f"{VOICE_PREFIX}/status", hung_up_params(self.call.call_sid)))
            return
        if agent is None:
            self.send()
            return
        self.agent_id, self.leg_sid = agent, self.requests.new_sid()
        self.calls.held[agent] = self.call.call_sid
        self.calls.routed.append((self.call.call_sid, agent, self.call.caller))
        self.stage = "leg"
        params = agent_answered_params(
            self.leg_sid, self.call.call_sid, self.call.caller, agent, self.requests.spec.account_sid
        )
        self.send(self.requests.signed(f"{VOICE_PREFIX}/agent-leg?agent={agent}", params))

    def _after_leg(self, status: bytes, body: bytes, ended: float) -> None:
        self._step_answer("agent-leg", status, body, ended, "empty")
        if self.calls.held.get(self.agent_id) == self.call.call_sid:
            del self.calls.held[self.agent_id]  # the dial action is on its way: the agent frees up
        self.stage = "dial"
        params = dial_completed_params(
            self.leg_sid, self.call.call_sid, self.call.caller, self.requests.spec.account_sid
        )
        self.send(self.requests.signed(f"{VOICE_PREFIX}/dial-action?agent={self.agent_id}", params))

    def _after_dial(self, status: bytes, body: bytes, ended: float) -> None:
        if self._step_answer("dial-action", status, body, ended, "hangup") and self.tally.in_window(ended):
            self.tally.completed += 1
        self.send()

    def _after_hangup(self, status: bytes, body: bytes, ended: float) -> None:
        self._step_answer("status", status, body, ended, "empty")
        self.send()

    def _step_answer(self, step: str, status: bytes, body: bytes, ended: float, expected: str) -> bool:
        """A later webhook of the call: counted as an error when it fails or answers otherwise."""
        good = status.startswith(b"2") and self.check.answers(body).kind == expected
        if not good and self.tally.in_window(ended):
            self.tally.errors += 1
            if status.startswith(b"2"):
                self.tally.mismatch(f"{step}: {_kind(self.check.answers(body))}", body)
            else:
                key = f"{step} {status.decode()}"
                self.tally.statuses[key] = self.tally.statuses.get(key, 0) + 1
        return good


async def run(spec: Spec) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    requests = Requests(spec)
    build_s = time.perf_counter() - t0
    tally = Tally()
    check = Checker(spec)
    calls = RoutedCalls(frozenset(spec.agent_ids))

    def connection() -> Connection:
        if spec.mode == "routed":
            return CallConnection(requests, tally, check, calls)
        return Connection(requests, tally, check)

    connections: list[Connection] = []
    for _ in range(spec.concurrency):
        _, protocol = await loop.create_connection(connection, spec.host, spec.port)
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
    # Wait (bounded) for the answers (and, routed, the calls) still under way, then close.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.stopped for c in connections)), 10)
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.gather(*(c.lost for c in connections))
    if spec.calls_file:
        calls.write(spec.calls_file)
    lat = sorted(tally.latencies_ms)
    pct = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) >= 2 else [0.0] * 99
    return {
        "ok": tally.ok,
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "mismatch_kinds": tally.mismatch_kinds,
        "samples": tally.samples,
        "completed": tally.completed,
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
        "routed_calls": len(calls.routed),
    }


def main() -> None:
    spec = Spec(**json.loads(sys.argv[1]))
    result = asyncio.run(run(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
