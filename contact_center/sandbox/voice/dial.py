"""Dial: ring clients and numbers at once and bridge the first to answer, or dequeue the caller
waiting longest in a queue; then the action with DialCallStatus."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contact_center.sandbox.model import Bridge, Call, CallInterrupted, Interrupt
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice import conference
from contact_center.sandbox.voice.flow import Next, request_ignored, resolve
from contact_center.sandbox.voice.queues import left_queue

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

DIAL_NOUNS = ("Client", "Number", "Queue", "Sip", "Conference", "Application")


@dataclass(slots=True)
class DialResult:
    status: str
    child: Call | None
    duration: int
    bridged: bool
    interrupted: CallInterrupted | None = None


async def dial(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    action = resolve(doc_url, verb.get("action"))
    method = verb.get("method", "POST")
    timeout = verb.number("timeout", 30)
    time_limit = verb.number("timeLimit", 14400)
    caller_id = verb.get("callerId") or call.from_
    nouns = [c for c in verb.children if c.name in DIAL_NOUNS]
    if not nouns and verb.text:
        nouns = [Verb("Number", text=verb.text)]
    call.note("dial", targets=[f"{n.name}:{n.text}" for n in nouns], timeout=timeout)
    queue_noun = next((n for n in nouns if n.name == "Queue"), None)
    room_noun = next((n for n in nouns if n.name == "Conference"), None)
    if queue_noun is not None:
        result = await _dial_queue(t, call, queue_noun, timeout, time_limit)
    elif room_noun is not None:
        # Twilio gives a conference's Dial "answered", and no DialCallSid.
        status, stopped = await conference.join(t, call, room_noun, doc_url, time_limit)
        result = DialResult(status, None, 0, status == "answered", stopped)
    else:
        targets = [n for n in nouns if n.name in ("Client", "Number")]
        for other in (n for n in nouns if n not in targets):
            call.note("not simulated", noun=other.name)
        if targets:
            result = await _dial_legs(t, call, targets, doc_url, timeout, time_limit, caller_id)
        else:
            result = DialResult("failed", None, 0, False)
    params = {"DialCallStatus": result.status, "DialBridged": "true" if result.bridged else "false"}
    if result.child is not None:
        params["DialCallSid"] = result.child.sid
        params["DialCallDuration"] = str(result.duration)
    call.note(
        "dial ended",
        dial_call_status=result.status,
        dial_call_sid=result.child.sid if result.child else None,
        duration=result.duration,
    )
    if result.interrupted is not None:
        if result.interrupted.interrupt.kind == "hangup" and action:
            await request_ignored(t, call, action, method, params, "dial action")
        raise result.interrupted
    if action:
        return Next(action, method, params=params)
    return None


async def _dial_legs(
    t: Telephony,
    call: Call,
    nouns: list[Verb],
    doc_url: str | None,
    ring_limit: float,
    time_limit: float,
    caller_id: str,
) -> DialResult:
    legs: list[Call] = []
    for noun in nouns:
        if noun.name == "Client":
            identity = noun.text or next((c.text for c in noun.children if c.name == "Identity"), "")
            to = f"client:{identity}"
        else:
            to = noun.text
        leg = t.new_call(caller_id, to, "outbound-dial", parent=call)
        leg.status_callback = resolve(doc_url, noun.get("statusCallback"))
        leg.status_callback_method = noun.get("statusCallbackMethod", "POST")
        leg.status_events = frozenset(noun.get("statusCallbackEvent", "completed").replace(",", " ").split())
        legs.append(leg)
        call.note("ringing", call_sid=leg.sid, to=to)
    rings: dict[asyncio.Task[str], Call] = {}
    for leg in legs:
        task: asyncio.Task[str] = t.sb.spawn(t.ring(leg, ring_limit), name=f"ring {leg.sid}")
        leg.runner = task
        rings[task] = leg
    winner: Call | None = None
    outcomes: list[str] = []
    pending = set(rings)
    try:
        while pending and winner is None:
            done = await _race(call, pending)
            pending -= done
            for task in done:
                outcome = task.result() if not task.cancelled() else "canceled"
                if outcome == "answered" and winner is None:
                    winner = rings[task]
                elif outcome == "answered":
                    t.hangup(rings[task], by="dial")
                else:
                    outcomes.append(outcome)
    except CallInterrupted as exc:
        await _stop_ringing(t, rings)
        return DialResult("canceled", legs[0] if len(legs) == 1 else None, 0, False, exc)
    await _stop_ringing(t, {task: leg for task, leg in rings.items() if leg is not winner})
    if winner is None:
        status = next((s for s in ("no-answer", "busy", "canceled", "failed") if s in outcomes), "failed")
        return DialResult(status, legs[0] if len(legs) == 1 else None, 0, False)
    return await _bridge(t, call, winner, time_limit)


async def _stop_ringing(t: Telephony, rings: dict[asyncio.Task[str], Call]) -> None:
    for task, leg in rings.items():
        if not task.done():
            t.hangup(leg, by="dial")
    await asyncio.gather(*rings, return_exceptions=True)
    for leg in rings.values():
        if not leg.is_final:
            t.finish(leg, "canceled")


async def _race(call: Call, tasks: set[asyncio.Task[str]]) -> set[asyncio.Task[str]]:
    """Wait for the first of ``tasks``; raises :class:`CallInterrupted` if ``call`` is interrupted."""
    call.check()
    waiter = asyncio.ensure_future(call.interrupt_event.wait())
    try:
        done, _ = await asyncio.wait({*tasks, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    call.check()
    return {task for task in tasks if task in done}


async def _bridge(t: Telephony, call: Call, leg: Call, time_limit: float) -> DialResult:
    if leg.is_final:  # hung up between its answer and the bridge
        return DialResult(leg.status, leg, 0, False)
    t.answer(leg)
    bridge = Bridge(call, leg, t.sb.now())
    call.bridge = leg.bridge = bridge
    call.note("bridged", call_sid=leg.sid, to=leg.to)
    leg.note("bridged", call_sid=call.sid)
    if leg.callee is not None:
        talk = t.sb.between(t.sb.config.outcomes.talk_seconds)
        leg.note("callee will hang up", after_seconds=round(talk, 1))
        t.sb.spawn(t.hangup_later(leg, talk, "callee"))
    interrupted: CallInterrupted | None = None
    try:
        if not await t.wait(call, time_limit, bridge.ended):
            call.note("dial time limit reached", seconds=time_limit)
    except CallInterrupted as exc:
        interrupted = exc
    duration = round((t.sb.now() - bridge.started_at) / t.sb.config.time_scale)
    still_bridged = leg.bridge is bridge  # not when the leg left to run TwiML of its own
    bridge.end(call)
    call.bridge = None
    if still_bridged:
        t.hangup(leg, by="bridge")
    return DialResult("completed", leg, duration, True, interrupted)


async def _dial_queue(
    t: Telephony, call: Call, noun: Verb, ring_limit: float, time_limit: float
) -> DialResult:
    queue = t.sb.queue(noun.text)
    deadline = t.sb.now() + t.sb.real(ring_limit)
    try:
        while not queue.members:
            queue.member_added.clear()
            left = (deadline - t.sb.now()) / t.sb.config.time_scale
            if left <= 0 or not await t.wait(call, left, queue.member_added):
                return DialResult("no-answer", None, 0, False)
    except CallInterrupted as exc:
        return DialResult("canceled", None, 0, False, exc)
    member = queue.members[0]
    left_queue(t, queue, member)
    bridge = Bridge(member, call, t.sb.now())
    member.bridge = call.bridge = bridge
    member.interrupt(Interrupt("bridge", by=call.sid, bridge=bridge))
    call.note("dequeued", queue=queue.friendly_name, call_sid=member.sid)
    interrupted: CallInterrupted | None = None
    try:
        if not await t.wait(call, time_limit, bridge.ended):
            call.note("dial time limit reached", seconds=time_limit)
    except CallInterrupted as exc:
        interrupted = exc
    duration = round((t.sb.now() - bridge.started_at) / t.sb.config.time_scale)
    bridge.end(call)
    call.bridge = None
    return DialResult("completed", member, duration, True, interrupted)
