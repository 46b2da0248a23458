"""Enqueue: a caller waits in a queue (its waitUrl's TwiML in a loop) until it leaves, hangs up,
is redirected or is dequeued by a ``<Dial><Queue>`` and bridged."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.sandbox.model import Bridge, Call, CallInterrupted, Queue
from contact_center.sandbox.twiml import TwiMLError, TwiMLSchemaError, Verb, check_voice_schema, parse_twiml
from contact_center.sandbox.voice.flow import END, WAIT_VERBS, Next, load, request_ignored, resolve
from contact_center.sandbox.voice.gather import gather
from contact_center.sandbox.voice.prompts import PROMPTS

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

QueueOutcome = tuple[str, Next | None]


def left_queue(t: Telephony, queue: Queue, call: Call) -> int:
    """Take ``call`` out of ``queue`` (once); its time in the queue in simulated seconds."""
    entered = queue.entered.pop(call.sid, None)
    if call in queue.members:
        queue.members.remove(call)
    if entered is not None:
        seconds = (t.sb.now() - entered) / t.sb.config.time_scale
        queue.waits.append(seconds)
        call.queue_time = round(seconds)
    if call.queue is queue:
        call.queue = None
    return call.queue_time


def queue_params(t: Telephony, queue: Queue, call: Call) -> dict[str, str]:
    entered = queue.entered.get(call.sid, t.sb.now())
    scale = t.sb.config.time_scale
    average = sum(queue.waits) / len(queue.waits) if queue.waits else 0.0
    return {
        "QueuePosition": str(queue.position(call)),
        "QueueSid": queue.sid,
        "QueueTime": str(round((t.sb.now() - entered) / scale)),
        "AvgQueueTime": str(round(average)),
        "CurrentQueueSize": str(len(queue.members)),
        "MaxQueueSize": str(t.sb.config.max_queue_size),
    }


async def enqueue(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    action = resolve(doc_url, verb.get("action"))
    method = verb.get("method", "POST")
    wait_url = resolve(doc_url, verb.get("waitUrl"))
    wait_method = verb.get("waitUrlMethod", "POST")
    queue = t.sb.queue(verb.text)
    if verb.get("workflowSid"):
        call.note("not simulated", detail="TaskRouter workflowSid: a plain queue is used")
    if len(queue.members) >= t.sb.config.max_queue_size:
        outcome: QueueOutcome = ("queue-full", None)
    else:
        queue.members.append(call)
        queue.entered[call.sid] = t.sb.now()
        call.queue = queue
        queue.member_added.set()
        call.note("enqueued", queue=queue.friendly_name, queue_sid=queue.sid, position=queue.position(call))
        try:
            outcome = await _wait_in_queue(t, call, queue, wait_url, wait_method)
        except CallInterrupted as exc:
            what = exc.interrupt
            if what.kind == "bridge" and what.bridge is not None:
                call.take_interrupt()
                left_queue(t, queue, call)
                outcome = await _bridged_from_queue(t, call, what.bridge)
            elif what.kind == "redirect":
                call.take_interrupt()
                outcome = ("redirected", Next(what.url, what.method, what.twiml))
            else:
                queue_time = left_queue(t, queue, call)
                call.note("left queue", result="hangup", queue_time=queue_time)
                if action:
                    params = _queue_result(queue, "hangup", queue_time)
                    await request_ignored(t, call, action, method, params, "enqueue action")
                raise
    result, follow = outcome
    queue_time = left_queue(t, queue, call)
    call.note("left queue", result=result, queue_time=queue_time)
    params = _queue_result(queue, result, queue_time)
    if result == "hangup":
        if action:
            await request_ignored(t, call, action, method, params, "enqueue action")
        return END
    if follow is not None:
        if action:
            await request_ignored(t, call, action, method, params, "enqueue action")
        return follow
    if action:
        return Next(action, method, params=params)
    return None


def _queue_result(queue: Queue, result: str, queue_time: int) -> dict[str, str]:
    return {"QueueResult": result, "QueueSid": queue.sid, "QueueTime": str(queue_time)}


async def _wait_in_queue(
    t: Telephony, call: Call, queue: Queue, wait_url: str | None, wait_method: str
) -> QueueOutcome:
    period = t.sb.config.queue_wait_period_seconds
    while True:
        started = t.sb.now()
        if wait_url is None:
            call.note("hold music", detail="Twilio's default wait music")
            await t.wait(call, None)
            continue
        params = {**t.params(call), **queue_params(t, queue, call)}
        result = await t.sb.webhook(wait_url, params, wait_method, what="enqueue wait", call=call)
        call.check()
        if not result.ok:
            return ("error", None)
        try:
            verbs = parse_twiml(result.body)
            check_voice_schema(verbs)
        except TwiMLSchemaError as exc:
            t.sb.record_error(12200, "Schema validation warning", str(exc), call)
            return ("error", None)
        except TwiMLError as exc:
            t.sb.record_error(12100, "Document parse failure", str(exc), call)
            return ("error", None)
        call.note("wait twiml", position=params["QueuePosition"], verbs=[v.name for v in verbs])
        outcome = await _execute_wait(t, call, verbs, wait_url)
        if outcome is not None:
            return outcome
        elapsed = (t.sb.now() - started) / t.sb.config.time_scale
        if elapsed < period:
            await t.wait(call, period - elapsed)


async def _execute_wait(
    t: Telephony, call: Call, verbs: list[Verb], doc_url: str | None
) -> QueueOutcome | None:
    """The TwiML of a waitUrl: only Say Play Pause Gather Leave Hangup Redirect are allowed."""
    for verb in verbs:
        call.check()
        if verb.name in WAIT_VERBS:
            await PROMPTS[verb.name](t, call, verb, doc_url)
        elif verb.name == "Gather":
            nxt = await gather(t, call, verb, doc_url)
            if nxt is not None:
                loaded = await load(t, call, nxt)
                if loaded is None:
                    return ("error", None)
                return await _execute_wait(t, call, loaded[0], loaded[1])
        elif verb.name == "Leave":
            call.note("leave")
            return ("leave", None)
        elif verb.name == "Hangup":
            call.note("hangup", by="twiml")
            return ("hangup", None)
        elif verb.name == "Redirect":
            url = resolve(doc_url, verb.text)
            call.note("redirect", url=url)
            if url is None:
                return ("error", None)
            return ("redirected", Next(url, verb.get("method", "POST")))
        else:
            call.note("not allowed in waitUrl", verb=verb.name)
    return None


async def _bridged_from_queue(t: Telephony, call: Call, bridge: Bridge) -> QueueOutcome:
    call.note("bridged", call_sid=bridge.other(call).sid)
    try:
        await t.wait(call, None, bridge.ended)
    except CallInterrupted as exc:
        bridge.end(call)
        call.bridge = None
        if exc.interrupt.kind == "redirect":
            call.take_interrupt()
            what = exc.interrupt
            return ("redirected-from-bridged", Next(what.url, what.method, what.twiml))
        raise
    call.bridge = None
    return ("bridged", None)
