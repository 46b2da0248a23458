"""Callbacks about a call: status callbacks for the events it asked for (in order, or jittered
so they may arrive out of order) and the one-off ones (AMD, recordings)."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call, rfc2822, utcnow

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony


def status_callback(t: Telephony, call: Call, event: str) -> None:
    if not call.status_callback or event not in call.status_events or t.sb.closing:
        return
    params = t.params(call)
    params.update(
        CallbackSource="call-progress-events",
        SequenceNumber=str(call.sequence),
        Timestamp=rfc2822(utcnow()) or "",
    )
    if event == "completed":
        duration = call.duration or 0
        params.update(
            CallDuration=str(duration),
            Duration=str(math.ceil(duration / 60)),
            SipResponseCode=str(call.sip_response_code),
        )
    call.sequence += 1
    callback_task(
        t, call, call.status_callback, call.status_callback_method, params, f"status {event}", chain=True
    )


def callback_task(
    t: Telephony, call: Call, url: str, method: str, params: dict[str, str], what: str, *, chain: bool
) -> None:
    """Send a callback in the background; ``chain``: after the call's previous chained one."""
    jitter = t.sb.config.callback_jitter_seconds
    delay = t.sb.rng.uniform(0, jitter) if chain and jitter > 0 else 0.0
    previous = call.last_callback if chain and jitter <= 0 else None
    call.pending_callbacks += 1
    task = t.sb.spawn(_send_callback(t, call, url, method, params, what, previous, delay))
    if chain:
        call.last_callback = task


async def _send_callback(
    t: Telephony,
    call: Call,
    url: str,
    method: str,
    params: dict[str, str],
    what: str,
    previous: asyncio.Task[None] | None,
    delay: float,
) -> None:
    try:
        if delay:
            await t.sb.sleep(delay)
        if previous is not None:
            await asyncio.wait({previous})
        await t.sb.webhook(url, params, method, what=what, call=call)
    finally:
        call.pending_callbacks -= 1
