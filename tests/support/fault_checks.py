"""What a fault must not do, measured after the traffic of a :class:`Traffic` stopped: lose or
duplicate anything the service acknowledged, leave a call unended or an agent unavailable, or
keep chat messages from the consoles; and how long until calls reached agents again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.fault_cluster import FaultCluster
from tests.support.fault_traffic import RETRYABLE, Console, Traffic, retrying

TERMINAL = ("completed", "busy", "failed", "no-answer", "canceled")
WORKING = ("available", "ringing", "on-call", "wrap-up")
LIVE_CHAT_SECONDS = 10.0


@dataclass
class FaultOutcome:
    fault: str
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    recovery_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        return {
            f"lost_{self.fault}": self.lost,
            f"duplicated_{self.fault}": self.duplicated,
            f"stuck_{self.fault}": self.stuck,
            f"recovery_s_{self.fault}": round(self.recovery_s, 2),
        }


async def time_to_route(traffic: Traffic, since: float, timeout: float = 60) -> float:
    """Seconds from ``since`` (the fault's end) until calls reach agents again: the first
    screen-pop of any call on any console after ``since``; a probe call goes in every second in
    case the traffic has none."""
    assert traffic.http is not None and traffic.phones is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(*RETRYABLE):
            await traffic.phones.call(traffic.http, talk_seconds=2)
        for _ in range(10):
            pops = [at for console in traffic.consoles for at, _frame in console.pops_after(since)]
            if pops:
                return min(pops) - since
            await asyncio.sleep(0.1)
    return timeout


async def measure(
    cluster: FaultCluster, traffic: Traffic, fault: str, fault_end: float, settle: float = 90
) -> FaultOutcome:
    """Stop the traffic, let it settle, and count (``recovery_s`` is measured apart, by
    :func:`time_to_route` as soon as the fault is over). ``fault_end``: when the fault was over
    (the instance, Redis or PostgreSQL was back), on the ``time.monotonic`` clock."""
    outcome = FaultOutcome(fault)
    started = time.monotonic()
    await traffic.stop_traffic()
    outcome.details["stop_s"] = round(time.monotonic() - started, 1)
    http, phones = traffic.http, traffic.phones
    assert http is not None and phones is not None

    # Texts: each acknowledged MessageSid stored once.
    rows = await cluster.fetch(
        "SELECT message_sid, count(*) AS n FROM sms_messages WHERE message_sid = ANY($1) GROUP BY message_sid",
        phones.texts,
    )
    stored_texts = {r["message_sid"]: r["n"] for r in rows}
    lost_texts = [sid for sid in phones.texts if sid not in stored_texts]
    dup_texts = sum(n - 1 for n in stored_texts.values())

    # Chat: each acknowledged message stored once, and shown on a console within 10 s of the
    # later of its acknowledgment and the end of the fault.
    acked = traffic.acked_chat()
    rows = await cluster.fetch(
        "SELECT client_id, count(*) AS n FROM chat_messages WHERE sender = 'visitor' AND client_id = ANY($1)"
        " GROUP BY client_id",
        list(acked),
    )
    stored_chat = {r["client_id"]: r["n"] for r in rows}
    lost_chat = [cid for cid in acked if cid not in stored_chat]
    dup_chat = sum(n - 1 for cid, n in stored_chat.items() if cid in acked)
    await asyncio.sleep(LIVE_CHAT_SECONDS)
    delivered = traffic.delivered_chat()
    late_chat = [
        cid
        for cid, at in acked.items()
        if cid not in delivered or delivered[cid] - max(at, fault_end) > LIVE_CHAT_SECONDS
    ]

    # Calls: every call the service answered is one interaction, and every one ends.
    answered = [sid for sid in phones.calls if await phones.inbound_answered(http, sid)]
    started = time.monotonic()
    not_over = await _all_calls_over(traffic, settle)
    outcome.details["calls_over_s"] = round(time.monotonic() - started, 1)
    outcome.details["sandbox_calls_not_over"] = not_over[:5]
    rows = await cluster.fetch(
        "SELECT external_id, count(*) AS n FROM interactions WHERE channel = 'voice' AND external_id = ANY($1)"
        " GROUP BY external_id",
        answered,
    )
    stored_calls = {r["external_id"]: r["n"] for r in rows}
    lost_calls = [sid for sid in answered if sid not in stored_calls]
    dup_calls = sum(n - 1 for n in stored_calls.values())
    started = time.monotonic()
    unended = await _unended_calls(cluster, answered, settle)
    outcome.details["unended_wait_s"] = round(time.monotonic() - started, 1)
    unavailable = await _agents_not_working(cluster, traffic.consoles[0], traffic)

    outcome.lost = len(lost_texts) + len(lost_chat) + len(lost_calls)
    outcome.duplicated = dup_texts + dup_chat + dup_calls
    outcome.stuck = len(unended) + len(unavailable) + len(late_chat)
    outcome.details |= {
        "texts": len(phones.texts),
        "texts_refused": phones.texts_refused,
        "chat_acked": len(acked),
        "calls_answered": len(answered),
        "lost_texts": lost_texts[:5],
        "lost_chat": lost_chat[:5],
        "lost_calls": lost_calls[:5],
        "late_chat": late_chat[:5],
        "unended_calls": unended[:5],
        "agents_not_working": unavailable,
        "chat_refusals": [f for v in traffic.chat for f in v.refused][:5],
    }
    return outcome


async def _all_calls_over(traffic: Traffic, timeout: float) -> list[str]:
    """Wait until the sandbox has ended every caller's call (callers hang up by themselves); the
    calls still going when ``timeout`` passed."""
    assert traffic.http is not None and traffic.phones is not None
    deadline = time.monotonic() + timeout
    while True:
        calls = await traffic.phones.sandbox_calls(traffic.http)
        going = [
            f"{sid}:{calls[sid].get('status')}"
            for sid in traffic.phones.calls
            if sid in calls and calls[sid].get("status") not in TERMINAL
        ]
        if not going or time.monotonic() > deadline:
            return going
        await asyncio.sleep(0.5)


async def _unended_calls(cluster: FaultCluster, sids: list[str], timeout: float) -> list[str]:
    """The calls the database still has as live once ``timeout`` passed (reconciliation included)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await cluster.fetch(
            "SELECT external_id, status FROM interactions WHERE channel = 'voice' AND external_id = ANY($1)"
            " AND NOT (status = ANY($2))",
            sids,
            list(TERMINAL),
        )
        if not rows or time.monotonic() > deadline:
            return [f"{r['external_id']}:{r['status']}" for r in rows]
        await asyncio.sleep(1)


async def _agents_not_working(cluster: FaultCluster, console: Console, traffic: Traffic) -> list[str]:
    """Agents whose presence is not a working state (nobody pressed a button since the fault)."""
    assert traffic.http is not None
    admin = Console(cluster.base_url, "admin")
    await admin.sign_in(traffic.http)
    body: dict[str, Any] = {}

    async def read() -> None:
        assert traffic.http is not None
        async with traffic.http.get(f"{cluster.base_url}/api/v1/presence", headers=admin.headers()) as resp:
            assert resp.status == 200, await resp.text()
            body.update(await resp.json())

    await retrying(read)
    logins = set(cluster.logins)
    return [
        f"{item.get('login', item['agent_id'])}:{item['state']}"
        for item in body["items"]
        if item.get("login") in logins and item["state"] not in WORKING
    ]
