"""Running TwiML: request a document, execute its verbs in order, follow where it continues
(an action, a Redirect, a live redirect from the REST API) until the call ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call, CallInterrupted
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice import prompts
from contact_center.sandbox.voice.dial import dial
from contact_center.sandbox.voice.flow import END, Handler, Next, load
from contact_center.sandbox.voice.gather import gather
from contact_center.sandbox.voice.queues import enqueue
from contact_center.sandbox.voice.record import record

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

VERBS: dict[str, Handler] = {
    "Say": prompts.say,
    "Play": prompts.play,
    "Pause": prompts.pause,
    "Gather": gather,
    "Dial": dial,
    "Enqueue": enqueue,
    "Record": record,
    "Redirect": prompts.redirect,
    "Hangup": prompts.hangup,
    "Reject": prompts.reject,
    "Leave": prompts.leave_outside_queue,
}


async def run(t: Telephony, call: Call, first: Next | None) -> None:
    """A leg's runner: its TwiML from ``first`` on; the call ends when the documents do."""
    nxt = first
    try:
        while nxt is not None and not nxt.end and not call.is_final:
            try:
                call.check()
                loaded = await load(t, call, nxt)
                if loaded is None:
                    break
                verbs, doc_url = loaded
                nxt = await _execute(t, call, verbs, doc_url)
            except CallInterrupted as exc:
                what = exc.interrupt
                if what.kind != "redirect":
                    break
                call.take_interrupt()
                call.note("redirect", url=what.url, by=what.by)
                nxt = Next(what.url, what.method, what.twiml)
    finally:
        if not call.is_final and not t.sb.closing:
            t.end_after_run(call)


async def _execute(t: Telephony, call: Call, verbs: list[Verb], doc_url: str | None) -> Next | None:
    if not verbs and call.answered_at is None:
        t.answer(call)  # any answer but <Reject> picks the call up, an empty one too
    for verb in verbs:
        call.check()
        if call.answered_at is None and verb.name != "Reject":
            t.answer(call)
        handler = VERBS.get(verb.name)
        if handler is None:
            call.note("not simulated", verb=verb.name)
            continue
        nxt = await handler(t, call, verb, doc_url)
        if nxt is not None:
            return nxt
    return END
