"""What a conference participant hears while it waits for the conference to start (``waitUrl``) or
is held (``HoldUrl``): the URL's TwiML is requested, signed, and requested again each time it has
played (Say, Play, Pause; a Redirect is followed), for as long as the wait or the hold lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from contact_center.sandbox.twiml import TwiMLError, TwiMLSchemaError, Verb, check_voice_schema, parse_twiml
from contact_center.sandbox.voice.flow import resolve

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony
    from contact_center.sandbox.voice.conference import Participant

STEP = 0.05
"""Real seconds between two looks at whether the wait or the hold is over."""


def _seconds(t: Telephony, verbs: list[Verb]) -> float | None:
    """How long the document plays (simulated seconds); None: forever (a ``loop="0"``)."""
    total = 0.0
    for verb in verbs:
        loops = int(verb.number("loop", 1))
        if verb.name == "Pause":
            total += verb.number("length", 1)
        elif verb.name in ("Say", "Play"):
            if loops == 0:
                return None
            one = t.sb.config.play_seconds
            if verb.name == "Say":
                one = max(1.0, len(verb.text.split()) / t.sb.config.speech_words_per_second)
            total += one * max(1, loops)
    return total


async def play_while(
    t: Telephony, participant: Participant, url: str, method: str, what: str, lasting: Callable[[], bool]
) -> None:
    """Request ``url`` and "play" it again and again while ``lasting()`` and the participant is in."""
    call = participant.call

    def goes_on() -> bool:
        return lasting() and not participant.left.is_set() and not call.is_final and not t.sb.closing

    period = t.sb.config.queue_wait_period_seconds
    while goes_on():
        result = await t.sb.webhook(url, t.params(call), method, what=what, call=call)
        if not result.ok:
            return
        try:
            verbs = parse_twiml(result.body)
            check_voice_schema(verbs)
        except TwiMLSchemaError as exc:
            t.sb.record_error(12200, "Schema validation warning", str(exc), call)
            return
        except TwiMLError as exc:
            t.sb.record_error(12100, "Document parse failure", str(exc), call)
            return
        call.note(what, url=url, verbs=[v.name for v in verbs])
        redirect = next((v for v in verbs if v.name == "Redirect"), None)
        seconds = _seconds(t, verbs)
        deadline = None if seconds is None else t.sb.now() + t.sb.real(max(seconds, period))
        while goes_on() and (deadline is None or t.sb.now() < deadline):
            with contextlib.suppress(TimeoutError):  # the hold or the wait may end without an event
                await asyncio.wait_for(participant.left.wait(), STEP)
        if redirect is not None:
            url = resolve(url, redirect.text) or url
            method = redirect.get("method", "POST")
