"""A call's Recordings subresource (2010-04-01): start a recording mid-call, list, fetch, pause,
resume, stop and delete it (``Twilio.CURRENT`` names the one under way), and recordings' media
as MP3 beside the WAV."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.listing import page, time_filter
from contact_center.sandbox.model import API_VERSION, Call, Recording, TwilioApiError
from contact_center.sandbox.rest import PREFIX, _method, _one, _url, _values, check_account, recording_fields
from contact_center.sandbox.voice import recorder

routes = web.RouteTableDef()
CURRENT = "Twilio.CURRENT"
RECORDINGS = f"{PREFIX}/Calls/{{call}}/Recordings"


def call_recording_resource(recording: Recording) -> dict[str, Any]:
    calls = f"/{API_VERSION}/Accounts/{recording.account_sid}/Calls/{recording.call_sid}"
    return {
        **recording_fields(recording),
        "uri": f"{calls}/Recordings/{recording.sid}.json",
        "track": "both",
    }


def _not_found(request: web.Request) -> TwilioApiError:
    return TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)


def _call(sb: Sandbox, request: web.Request) -> Call:
    call = sb.calls.get(request.match_info["call"])
    if call is None:
        raise _not_found(request)
    return call


def _recording(sb: Sandbox, request: web.Request) -> tuple[Call, Recording]:
    call = _call(sb, request)
    sid = request.match_info["sid"]
    recording = recorder.current(sb.voice, call) if sid == CURRENT else sb.recordings.get(sid)
    if recording is None or recording.call_sid != call.sid:
        raise _not_found(request)
    return call, recording


@routes.post(f"{RECORDINGS}.json")
async def start_recording(request: web.Request) -> web.Response:
    """Record the call from now on (RecordingStatusCallback, its events and RecordingChannels);
    Trim and RecordingTrack are accepted."""
    sb = check_account(request)
    call = _call(sb, request)
    form = await request.post()
    channels = (_one(form, "RecordingChannels") or "mono").lower()
    if channels not in ("mono", "dual"):
        raise TwilioApiError(21218, f"Invalid RecordingChannels {channels!r}: mono or dual")
    recording = recorder.start(
        sb.voice,
        call,
        "StartCallRecordingAPI",
        callback=_url(form, "RecordingStatusCallback"),
        method=_method(form, "RecordingStatusCallbackMethod"),
        events=recorder.parse_events(_values(form, "RecordingStatusCallbackEvent")),
        channels=2 if channels == "dual" else 1,
    )
    return web.json_response(call_recording_resource(recording), status=201)


@routes.get(f"{RECORDINGS}.json")
async def list_call_recordings(request: web.Request) -> web.Response:
    """The call's recordings, newest first; filter DateCreated (with < and >)."""
    sb = check_account(request)
    call = _call(sb, request)
    created = time_filter(request.query, "DateCreated")
    recordings = [
        r for r in reversed(sb.recordings.values()) if r.call_sid == call.sid and created(r.date_created)
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Calls/{call.sid}/Recordings.json"
    return web.json_response(
        page(request.query, "recordings", recordings, lambda r: r.sid, call_recording_resource, path)
    )


@routes.get(f"{RECORDINGS}/{{sid}}.json")
async def fetch_call_recording(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(call_recording_resource(_recording(sb, request)[1]))


@routes.post(f"{RECORDINGS}/{{sid}}.json")
async def update_call_recording(request: web.Request) -> web.Response:
    """``Status=paused|in-progress|stopped`` (PauseBehavior accepted)."""
    sb = check_account(request)
    call, recording = _recording(sb, request)
    form = await request.post()
    status = _one(form, "Status")
    if status is None:
        raise TwilioApiError(21218, "Status is required")
    recorder.change(sb.voice, call, recording, status)
    return web.json_response(call_recording_resource(recording))


@routes.delete(f"{RECORDINGS}/{{sid}}.json")
async def delete_call_recording(request: web.Request) -> web.Response:
    sb = check_account(request)
    _, recording = _recording(sb, request)
    if recording.status not in ("completed", "absent"):
        raise TwilioApiError(20009, f"Cannot delete a recording in status {recording.status}", 409)
    del sb.recordings[recording.sid]
    return web.Response(status=204)


@routes.get(f"{PREFIX}/Recordings/{{sid:RE[0-9a-f]{{32}}}}.mp3")
async def recording_mp3(request: web.Request) -> web.Response:
    """The recording's media as MP3: silent frames of the recorded length (up to 60 s)."""
    sb = check_account(request)
    recording = sb.recordings.get(request.match_info["sid"])
    if recording is None:
        raise _not_found(request)
    return web.Response(body=silent_mp3(min(max(0, recording.duration), 60)), content_type="audio/mpeg")


# One MPEG-1 Layer III frame, 32 kbit/s, 32 kHz, mono, no CRC: 144 bytes holding 1152 silent samples.
MP3_FRAME = bytes([0xFF, 0xFB, 0x18, 0xC0]) + bytes(140)
MP3_FRAME_SECONDS = 1152 / 32000


def silent_mp3(seconds: int) -> bytes:
    return MP3_FRAME * max(1, math.ceil(seconds / MP3_FRAME_SECONDS))
