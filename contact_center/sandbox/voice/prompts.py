"""The simple verbs: Say, Play and Pause (the prompts, which take simulated time), Redirect,
Hangup, Reject, and a Leave outside a queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice.flow import END, Handler, Next, resolve

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony


def _loops(verb: Verb) -> int:
    return max(0, int(verb.number("loop", 1)))


async def say(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    loops = _loops(verb)
    words = max(1, len(verb.text.split()))
    seconds = max(1.0, words / t.sb.config.speech_words_per_second)
    call.note("say", text=verb.text, voice=verb.get("voice") or None, language=verb.get("language") or None)
    await t.wait(call, None if loops == 0 else seconds * loops)
    return None


async def play(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    digits = verb.get("digits")
    if digits:
        call.note("play", digits=digits)
        await t.wait(call, 0.5 * len(digits))
        return None
    loops = _loops(verb)
    call.note("play", url=resolve(doc_url, verb.text) or verb.text, loop=loops)
    await t.wait(call, None if loops == 0 else t.sb.config.play_seconds * loops)
    return None


async def pause(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    length = verb.number("length", 1)
    call.note("pause", length=length)
    await t.wait(call, length)
    return None


async def redirect(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    url = resolve(doc_url, verb.text)
    call.note("redirect", url=url)
    if url is None:
        t.sb.record_error(21205, "Invalid URL", f"<Redirect> to {verb.text!r}", call)
        return END
    return Next(url, verb.get("method", "POST"))


async def hangup(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    call.note("hangup", by="twiml")
    return END


async def reject(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    reason = verb.get("reason", "rejected")
    call.note("reject", reason=reason)
    if call.answered_at is None:
        # Twilio: reason="busy" ends the call busy, "rejected" (the default) no-answer.
        t.finish(call, "busy" if reason == "busy" else "no-answer")
    return END


async def leave_outside_queue(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    call.note("leave ignored", reason="the call is not in a queue")
    return None


PROMPTS: dict[str, Handler] = {"Say": say, "Play": play, "Pause": pause}
"""The verbs allowed inside a Gather and a waitUrl's TwiML that only take time (``WAIT_VERBS``)."""
