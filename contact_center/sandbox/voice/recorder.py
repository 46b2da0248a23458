"""Recording a call while it goes on (``POST Calls/{Sid}/Recordings.json``, ``Record=true`` on a new
call): started, paused, resumed and stopped through the API, finished when the call ends, with the
recording status callbacks (in-progress, completed, absent) Twilio sends."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from contact_center.sandbox.model import Call, Recording, TwilioApiError, new_sid, rfc2822, utcnow
from contact_center.sandbox.voice.callbacks import callback_task

if TYPE_CHECKING:
    from contact_center.sandbox.voice.calls import Telephony

RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})
LIVE = frozenset({"in-progress", "paused"})
PROCESSING_SECONDS = 1.0
"""Simulated time between a stop and the recording being ``completed``."""


def recording_callback(t: Telephony, call: Call, recording: Recording, status: str) -> None:
    """The recording status callback for ``status``, when the recording asked for that event."""
    if not recording.callback or status not in recording.callback_events:
        return
    params = {
        "AccountSid": call.account_sid,
        "CallSid": call.sid,
        "RecordingSid": recording.sid,
        "RecordingUrl": t.sb.recording_url(recording),
        "RecordingStatus": status,
        "RecordingChannels": str(recording.channels),
        "RecordingSource": recording.source,
        "RecordingStartTime": rfc2822(recording.date_created) or "",
    }
    if status == "completed":
        params["RecordingDuration"] = str(recording.duration)
    what = f"recording {status}"
    callback_task(t, call, recording.callback, recording.callback_method, params, what, chain=False)


def parse_events(values: list[str]) -> frozenset[str]:
    events = frozenset(e for v in values for e in v.replace(",", " ").split())
    unknown = events - RECORDING_EVENTS
    if unknown:
        raise TwilioApiError(21626, f"Invalid RecordingStatusCallbackEvent: {', '.join(sorted(unknown))}")
    return events or frozenset({"completed"})


def start(
    t: Telephony,
    call: Call,
    source: str,
    *,
    callback: str | None = None,
    method: str = "POST",
    events: frozenset[str] = frozenset({"completed"}),
    channels: int = 1,
) -> Recording:
    """Start recording an answered call (duration ``-1`` until it is over, as at Twilio)."""
    if call.is_final or call.answered_at is None:
        raise TwilioApiError(21220, "Requested resource is not eligible for recording")
    recording = Recording(new_sid("RE"), call.account_sid, call.sid, duration=-1, source=source)
    recording.status, recording.channels, recording.started = "in-progress", channels, t.sb.now()
    recording.callback, recording.callback_method, recording.callback_events = callback, method, events
    t.sb.recordings[recording.sid] = recording
    call.note("recording started", recording_sid=recording.sid, source=source)
    recording_callback(t, call, recording, "in-progress")
    t.sb.spawn(_until_call_ends(t, call, recording), name=f"recording {recording.sid}")
    return recording


def current(t: Telephony, call: Call) -> Recording | None:
    """``Twilio.CURRENT``: the call's recording under way (the newest)."""
    live = [r for r in t.sb.recordings.values() if r.call_sid == call.sid and r.status in LIVE]
    return live[-1] if live else None


def change(t: Telephony, call: Call, recording: Recording, status: str) -> None:
    """``Status=paused|in-progress|stopped``; a recording no longer under way answers 21220."""
    if status not in ("paused", "in-progress", "stopped"):
        raise TwilioApiError(21218, f"Invalid Status {status!r}: paused, in-progress or stopped")
    if recording.status not in LIVE:
        raise TwilioApiError(21220, f"The recording is {recording.status}")
    now = t.sb.now()
    call.note("recording", recording_sid=recording.sid, status=status)
    if status == "stopped":
        _stop(t, recording)
        t.sb.spawn(_finish(t, call, recording, PROCESSING_SECONDS))
        return
    if status == "paused" and recording.paused_at is None:
        recording.paused_at = now
    elif status != "paused" and recording.paused_at is not None:
        recording.paused_seconds += now - recording.paused_at
        recording.paused_at = None
    recording.status, recording.date_updated = status, utcnow()


def _stop(t: Telephony, recording: Recording) -> None:
    """Stopped now: its length is what was recorded until now, pauses left out."""
    now = t.sb.now()
    if recording.paused_at is not None:
        recording.paused_seconds += now - recording.paused_at
        recording.paused_at = None
    seconds = (now - recording.started - recording.paused_seconds) / t.sb.config.time_scale
    recording.duration = max(0, round(seconds))
    recording.status, recording.date_updated = "stopped", utcnow()


def _finish_now(t: Telephony, call: Call, recording: Recording) -> None:
    if recording.status in LIVE:
        _stop(t, recording)
    if recording.status != "stopped":
        return
    # Twilio keeps no recording of less than a second: it is "absent".
    status = "completed" if recording.duration > 0 else "absent"
    recording.status, recording.date_updated = status, utcnow()
    recording_callback(t, call, recording, status)


async def _finish(t: Telephony, call: Call, recording: Recording, delay: float) -> None:
    await t.sb.sleep(delay)
    _finish_now(t, call, recording)


async def _until_call_ends(t: Telephony, call: Call, recording: Recording) -> None:
    await call.ended.wait()
    if recording.status in LIVE:
        _finish_now(t, call, recording)


async def when_answered(
    t: Telephony, call: Call, callback: str | None, method: str, events: frozenset[str], channels: int
) -> None:
    """``Record=true`` on a new call: its recording starts when it is answered (if it is)."""
    waits = [asyncio.ensure_future(e.wait()) for e in (call.answered_event, call.ended)]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
    if call.answered_event.is_set() and not call.is_final:
        start(t, call, "OutboundAPI", callback=callback, method=method, events=events, channels=channels)
