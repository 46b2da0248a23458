"""Record: the caller speaks for a while, a recording is kept, its status callbacks are sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call, CallInterrupted, Recording, new_sid
from contact_center.sandbox.twiml import Verb
from contact_center.sandbox.voice.flow import Next, request_ignored, resolve
from contact_center.sandbox.voice.recorder import recording_callback

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony


async def record(t: Telephony, call: Call, verb: Verb, doc_url: str | None) -> Next | None:
    action = resolve(doc_url, verb.get("action")) or doc_url
    method = verb.get("method", "POST")
    max_length = verb.number("maxLength", 3600)
    finish = verb.get("finishOnKey", "1234567890*#")
    speaks = call.record_seconds if call.record_seconds is not None else t.sb.config.record_seconds
    seconds = min(max(0.0, speaks), max_length)
    callback = resolve(doc_url, verb.get("recordingStatusCallback"))
    callback_method = verb.get("recordingStatusCallbackMethod", "POST")
    events = set(verb.get("recordingStatusCallbackEvent", "completed").replace(",", " ").split())
    recording = Recording(new_sid("RE"), call.account_sid, call.sid, duration=round(seconds))
    recording.callback, recording.callback_method = callback, callback_method
    recording.callback_events = frozenset(events)
    call.note("record", recording_sid=recording.sid, max_length=max_length, beep=verb.flag("playBeep", True))
    if seconds <= 0:
        call.note("record empty", detail="the caller said nothing; next verb")
        return None
    if callback:
        recording_callback(t, call, recording, "in-progress")
    hung_up: CallInterrupted | None = None
    started = t.sb.now()
    try:
        await t.wait(call, seconds)
    except CallInterrupted as exc:
        if exc.interrupt.kind != "hangup":
            raise
        hung_up = exc
        recording.duration = max(1, round((t.sb.now() - started) / t.sb.config.time_scale))
    digits = "hangup" if hung_up else ""
    if not hung_up and call.digits and call.digits[0][:1] and call.digits[0][0] in finish:
        digits = call.digits[0][0]
        rest = call.digits[0][1:]
        call.digits[0:1] = [rest] if rest else []
    t.sb.recordings[recording.sid] = recording
    url = t.sb.recording_url(recording)
    call.note("recorded", recording_sid=recording.sid, duration=recording.duration, digits=digits)
    if callback:
        recording_callback(t, call, recording, "completed")
    params = {
        "RecordingUrl": url,
        "RecordingSid": recording.sid,
        "RecordingDuration": str(recording.duration),
        "Digits": digits,
    }
    if hung_up is not None:
        if action:
            await request_ignored(t, call, action, method, params, "record action")
        raise hung_up
    if action is None:
        return None
    return Next(action, method, params=params)
