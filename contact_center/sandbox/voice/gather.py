"""Gather: the caller's keys (or ``speech:`` words) during and after its prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice.flow import SPEECH_PREFIX, WAIT_VERBS, Next, resolve
from contact_center.sandbox.voice.prompts import PROMPTS

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony


async def gather(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    action = resolve(doc_url, verb.get("action")) or doc_url
    method = verb.get("method", "POST")
    timeout = verb.number("timeout", 5)
    num_digits = int(verb.number("numDigits", 0))
    finish = verb.get("finishOnKey", "#")
    inputs = verb.get("input", "dtmf").replace(",", " ").split()
    call.note("gather", action=action, num_digits=num_digits or None, timeout=timeout, input=inputs)
    if not call.digits:
        for child in verb.children:
            if child.name in WAIT_VERBS:
                await PROMPTS[child.name](t, call, child, doc_url)
                if call.digits:
                    break  # the caller pressed a key during the prompt
    got = await _take_input(t, call, timeout, num_digits, finish, inputs)
    if got is None:
        call.note("gather timeout")
        if verb.flag("actionOnEmptyResult") and action:
            return Next(action, method)
        return None
    call.note("gathered", **{k.lower(): v for k, v in got.items()})
    if action is None:
        t.sb.record_error(21205, "Invalid URL", "<Gather> without action in inline TwiML", call)
        return None
    return Next(action, method, params=got)


async def _take_input(
    t: Telephony, call: Call, wait_seconds: float, num_digits: int, finish: str, inputs: list[str]
) -> dict[str, str] | None:
    if not call.digits:
        call.digits_arrived.clear()
        await t.wait(call, wait_seconds, call.digits_arrived)
        if not call.digits:
            return None
    segment = call.digits.pop(0)
    if segment.startswith(SPEECH_PREFIX):
        if "speech" not in inputs:
            return None
        return {"SpeechResult": segment[len(SPEECH_PREFIX) :].strip(), "Confidence": "0.92"}
    if "dtmf" not in inputs:
        return None
    digits, finished, index = "", "", 0
    while index < len(segment):
        key = segment[index]
        index += 1
        if finish and key in finish:
            finished = key
            break
        digits += key
        if num_digits and len(digits) >= num_digits:
            break
    if segment[index:]:
        call.digits.insert(0, segment[index:])
    result = {"Digits": digits}
    if finished:
        result["FinishedOnKey"] = finished
    return result
