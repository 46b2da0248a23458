"""Twilio's REST API, the subset the service uses: Calls, Messages, Recordings (2010-04-01)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import struct
from typing import Any

import phonenumbers
from aiohttp import web
from multidict import MultiDictProxy

from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.keys import SANDBOX
from contact_center.sandbox.listing import equal_to, page, time_filter
from contact_center.sandbox.messaging import OutboundMessage
from contact_center.sandbox.model import (
    API_VERSION,
    Call,
    Message,
    Recording,
    TwilioApiError,
    rfc2822,
)
from contact_center.sandbox.segments import num_segments
from contact_center.sandbox.voice import OutboundRequest, is_phone_number, recorder

PREFIX = f"/{API_VERSION}/Accounts/{{account}}"
CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
routes = web.RouteTableDef()


def _formatted(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))


def _number_sid(number: str) -> str:
    return "PN" + hashlib.sha256(number.encode()).hexdigest()[:32]


# -- resource shapes ---------------------------------------------------------------------------


def call_resource(sb: Sandbox, call: Call) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}"
    return {
        "sid": call.sid,
        "date_created": rfc2822(call.date_created),
        "date_updated": rfc2822(call.date_updated),
        "parent_call_sid": call.parent_call_sid,
        "account_sid": call.account_sid,
        "to": call.to,
        "to_formatted": _formatted(call.to),
        "from": call.from_,
        "from_formatted": _formatted(call.from_),
        "phone_number_sid": _number_sid(call.to) if call.to in sb.config.numbers else None,
        "status": call.status,
        "start_time": rfc2822(call.start_time),
        "end_time": rfc2822(call.end_time),
        # Twilio leaves it empty for a call nobody answered (busy, no-answer, failed, canceled).
        "duration": str(call.duration) if call.status == "completed" else None,
        "price": None,
        "price_unit": "USD",
        "direction": call.direction,
        "answered_by": call.answered_by,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": call.caller_name,
        "queue_time": str(call.queue_time),
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": {
            name: f"{uri}/{path}.json"
            for name, path in (
                ("feedback", "Feedback"),
                ("user_defined_messages", "UserDefinedMessages"),
                ("notifications", "Notifications"),
                ("recordings", "Recordings"),
                ("streams", "Streams"),
                ("payments", "Payments"),
                ("siprec", "Siprec"),
                ("events", "Events"),
                ("feedback_summaries", "FeedbackSummary"),
            )
        },
    }


def message_resource(message: Message) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": rfc2822(message.date_created),
        "date_sent": rfc2822(message.date_sent),
        "date_updated": rfc2822(message.date_updated),
        "direction": message.direction,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": str(len(message.media_urls)),
        "num_segments": str(num_segments(message.body)),
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


def recording_fields(recording: Recording) -> dict[str, Any]:
    """What a recording shows wherever it is listed (the account's Recordings, a call's)."""
    return {
        "account_sid": recording.account_sid,
        "api_version": API_VERSION,
        "call_sid": recording.call_sid,
        "conference_sid": None,
        "date_created": rfc2822(recording.date_created),
        "date_updated": rfc2822(recording.date_updated),
        "start_time": rfc2822(recording.date_created),
        "duration": str(recording.duration),
        "sid": recording.sid,
        "price": None,
        "price_unit": "USD",
        "status": recording.status,
        "channels": recording.channels,
        "source": recording.source,
        "error_code": None,
        "encryption_details": None,
    }


def recording_resource(sb: Sandbox, recording: Recording) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{recording.account_sid}/Recordings/{recording.sid}"
    return {
        **recording_fields(recording),
        "uri": f"{uri}.json",
        "media_url": sb.recording_url(recording),
        "subresource_uris": {
            "add_on_results": f"{uri}/AddOnResults.json",
            "transcriptions": f"{uri}/Transcriptions.json",
        },
    }


# -- auth and errors ---------------------------------------------------------------------------


def twilio_error(code: int, message: str, status: int) -> web.Response:
    response = web.json_response(TwilioApiError(code, message, status).body(), status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def authorized(sb: Sandbox, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), sb.config.account_sid.encode()) and hmac.compare_digest(
        password.encode(), sb.config.auth_token.encode()
    )


def check_account(request: web.Request) -> Sandbox:
    """Basic auth as Twilio checks it (401, 20003), then the account in the path (404, 20404)."""
    sb = request.app[SANDBOX]
    if not authorized(sb, request.headers.get("Authorization", "")):
        raise TwilioApiError(20003, "Authenticate", 401)
    if request.match_info.get("account") != sb.config.account_sid:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    sb.learn_public_url(str(request.url.origin()), request.path)
    return sb


def _values(form: MultiDictProxy[Any], name: str) -> list[str]:
    return [str(v) for v in form.getall(name, [])]


def _one(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return str(value).strip() if value is not None and str(value).strip() else None


def _method(form: MultiDictProxy[Any], name: str) -> str:
    value = (_one(form, name) or "POST").upper()
    if value not in ("GET", "POST"):
        raise TwilioApiError(21209, f"Invalid {name}: {value}")
    return value


def _url(form: MultiDictProxy[Any], name: str) -> str | None:
    value = _one(form, name)
    if value is not None and not value.startswith(("http://", "https://")):
        raise TwilioApiError(21205, f"Url is not a valid URL: {value}")
    return value


# -- Calls -------------------------------------------------------------------------------------


def check_numbers(sb: Sandbox, to: str | None, from_: str | None) -> tuple[str, str]:
    """A new call's To and From, refused as Twilio refuses them (21201, 21213, 21211, 21212)."""
    if not to:
        raise TwilioApiError(21201, "No 'To' number is specified")
    if not from_:
        raise TwilioApiError(21213, "No 'From' number is specified")
    if not to.startswith(("client:", "sip:")):
        if sb.config.magic_numbers and to == "+15005550001":
            raise TwilioApiError(21211, f"Invalid 'To' Phone Number: {to}")
        if not is_phone_number(to):
            raise TwilioApiError(21211, f"Invalid 'To' Phone Number: {to}")
    if not from_.startswith("client:") and not is_phone_number(from_):
        raise TwilioApiError(21212, f"Invalid 'From' Phone Number: {from_}")
    return to, from_


@routes.post(f"{PREFIX}/Calls.json")
async def create_call(request: web.Request) -> web.Response:
    sb = check_account(request)
    form = await request.post()
    to, from_ = check_numbers(sb, _one(form, "To"), _one(form, "From"))
    url, twiml = _url(form, "Url"), _one(form, "Twiml")
    application = _one(form, "ApplicationSid")
    if url is None and twiml is None and application is not None:
        # The sandbox has one TwiML App: its Voice URL answers every ApplicationSid.
        url = sb.config.client_voice_url or None
        if url is None:
            raise TwilioApiError(21205, f"Application {application} has no Voice URL (client_voice_url)")
    if url is None and twiml is None:
        raise TwilioApiError(21205, "Url parameter is required (or Twiml, or ApplicationSid)")
    events = {e for value in _values(form, "StatusCallbackEvent") for e in value.replace(",", " ").split()}
    unknown = events - CALL_EVENTS
    if unknown:
        raise TwilioApiError(21626, f"Invalid StatusCallbackEvent: {', '.join(sorted(unknown))}")
    detection = _one(form, "MachineDetection")
    if detection is not None and detection not in ("Enable", "DetectMessageEnd"):
        raise TwilioApiError(21625, f"Invalid MachineDetection value {detection}")
    send_digits = _one(form, "SendDigits")
    if send_digits is not None:
        detection = None  # Twilio runs no machine detection on a call that sends digits
    recording = _recording_request(form)
    try:
        timeout = float(_one(form, "Timeout") or 60)
        amd_timeout = float(_one(form, "MachineDetectionTimeout") or 30)
    except ValueError as exc:
        raise TwilioApiError(21216, "Invalid Timeout") from exc
    if sb.voice.pacer.refuses():
        raise TwilioApiError(20429, "Too Many Requests", 429)
    call = sb.voice.start_outbound(
        OutboundRequest(
            to=to,
            from_=from_,
            url=url,
            twiml=twiml,
            method=_method(form, "Method"),
            status_callback=_url(form, "StatusCallback"),
            status_callback_method=_method(form, "StatusCallbackMethod"),
            status_events=frozenset(events or {"completed"}),
            machine_detection=detection,
            async_amd=(_one(form, "AsyncAmd") or "").lower() == "true",
            async_amd_callback=_url(form, "AsyncAmdStatusCallback"),
            async_amd_method=_method(form, "AsyncAmdStatusCallbackMethod"),
            machine_detection_timeout=max(3.0, min(59.0, amd_timeout)),
            timeout=max(5.0, min(600.0, timeout)),
        )
    )
    if send_digits is not None:
        call.note("send digits on answer", digits=send_digits, machine_detection="skipped")
    if recording is not None:
        sb.spawn(recorder.when_answered(sb.voice, call, *recording), name=f"record {call.sid}")
    return web.json_response(call_resource(sb, call), status=201)


def _recording_request(form: MultiDictProxy[Any]) -> tuple[str | None, str, frozenset[str], int] | None:
    """``Record=true`` and its options: (callback, method, events, channels); None when not asked."""
    if (_one(form, "Record") or "").lower() != "true":
        return None
    channels = 2 if (_one(form, "RecordingChannels") or "mono").lower() == "dual" else 1
    events = recorder.parse_events(_values(form, "RecordingStatusCallbackEvent"))
    return (
        _url(form, "RecordingStatusCallback"),
        _method(form, "RecordingStatusCallbackMethod"),
        events,
        channels,
    )


@routes.get(f"{PREFIX}/Calls.json")
async def list_calls(request: web.Request) -> web.Response:
    """Newest first; filters To, From, Status, ParentCallSid, StartTime and EndTime (with < and >)."""
    sb = check_account(request)
    q = request.query
    started, ended = time_filter(q, "StartTime"), time_filter(q, "EndTime")
    calls = [
        c
        for c in reversed(sb.calls.values())
        if equal_to(q, "To", c.to)
        and equal_to(q, "From", c.from_)
        and equal_to(q, "Status", c.status)
        and equal_to(q, "ParentCallSid", c.parent_call_sid)
        and started(c.start_time)
        and ended(c.end_time)
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Calls.json"
    return web.json_response(page(q, "calls", calls, lambda c: c.sid, lambda c: call_resource(sb, c), path))


def _call(sb: Sandbox, request: web.Request) -> Call:
    call = sb.calls.get(request.match_info["sid"])
    if call is None:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    return call


@routes.get(f"{PREFIX}/Calls/{{sid}}.json")
async def fetch_call(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(call_resource(sb, _call(sb, request)))


@routes.post(f"{PREFIX}/Calls/{{sid}}.json")
async def update_call(request: web.Request) -> web.Response:
    sb = check_account(request)
    call = _call(sb, request)
    form = await request.post()
    ending = sb.voice.update(
        call,
        url=_url(form, "Url"),
        method=_method(form, "Method"),
        twiml=_one(form, "Twiml"),
        status=_one(form, "Status"),
    )
    if ending:
        # Twilio answers with the call as it now is: wait (briefly) for the hang-up to land.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.ended.wait(), 5.0)
    return web.json_response(call_resource(sb, call))


# -- Messages ----------------------------------------------------------------------------------


@routes.post(f"{PREFIX}/Messages.json")
async def create_message(request: web.Request) -> web.Response:
    sb = check_account(request)
    form = await request.post()
    message = sb.sms.create(
        OutboundMessage(
            to=_one(form, "To") or "",
            from_=_one(form, "From"),
            messaging_service_sid=_one(form, "MessagingServiceSid"),
            body=str(form.get("Body") or ""),
            media_urls=_values(form, "MediaUrl"),
            status_callback=_url(form, "StatusCallback"),
        )
    )
    return web.json_response(message_resource(message), status=201)


@routes.get(f"{PREFIX}/Messages.json")
async def list_messages(request: web.Request) -> web.Response:
    """Newest first; filters To, From and DateSent (with < and >)."""
    sb = check_account(request)
    q = request.query
    sent = time_filter(q, "DateSent")
    messages = [
        m
        for m in reversed(sb.messages.values())
        if equal_to(q, "To", m.to) and equal_to(q, "From", m.from_) and sent(m.date_sent)
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Messages.json"
    return web.json_response(page(q, "messages", messages, lambda m: m.sid, message_resource, path))


@routes.get(f"{PREFIX}/Messages/{{sid}}.json")
async def fetch_message(request: web.Request) -> web.Response:
    sb = check_account(request)
    message = sb.messages.get(request.match_info["sid"])
    if message is None:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    return web.json_response(message_resource(message))


# -- Recordings --------------------------------------------------------------------------------


def _recording(sb: Sandbox, request: web.Request) -> Recording:
    recording = sb.recordings.get(request.match_info["sid"])
    if recording is None:
        raise TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)
    return recording


@routes.get(f"{PREFIX}/Recordings.json")
async def list_recordings(request: web.Request) -> web.Response:
    """Newest first; filters CallSid and DateCreated (with < and >)."""
    sb = check_account(request)
    q = request.query
    created = time_filter(q, "DateCreated")
    recordings = [
        r
        for r in reversed(sb.recordings.values())
        if equal_to(q, "CallSid", r.call_sid) and created(r.date_created)
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Recordings.json"
    return web.json_response(
        page(q, "recordings", recordings, lambda r: r.sid, lambda r: recording_resource(sb, r), path)
    )


@routes.get(f"{PREFIX}/Recordings/{{sid}}.json")
async def fetch_recording(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(recording_resource(sb, _recording(sb, request)))


@routes.get(f"{PREFIX}/Recordings/{{sid:RE[0-9a-f]{{32}}}}")
@routes.get(f"{PREFIX}/Recordings/{{sid:RE[0-9a-f]{{32}}}}.wav")
async def recording_audio(request: web.Request) -> web.Response:
    """The recording's media: silence of the recorded length (8 kHz, 8-bit mono WAV, up to 60 s)."""
    sb = check_account(request)
    recording = _recording(sb, request)
    return web.Response(body=silent_wav(min(recording.duration, 60)), content_type="audio/x-wav")


def silent_wav(seconds: int, rate: int = 8000) -> bytes:
    frames = b"\x80" * (rate * max(0, seconds))
    header = b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    return header + fmt + b"data" + struct.pack("<I", len(frames)) + frames
