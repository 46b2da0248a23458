"""Twilio's Conference and Participant resources (2010-04-01): list, fetch and end conferences;
dial a participant in, list, fetch, update (mute, hold, coach) and remove participants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from multidict import MultiDictProxy

from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.listing import equal_to, page, time_filter
from contact_center.sandbox.model import API_VERSION, TwilioApiError, rfc2822
from contact_center.sandbox.rest import (
    CALL_EVENTS,
    PREFIX,
    _method,
    _one,
    _url,
    _values,
    check_account,
    check_numbers,
)
from contact_center.sandbox.voice import OutboundRequest
from contact_center.sandbox.voice.conference import (
    Conference,
    Participant,
    adopt_settings,
    announce,
    change,
    end,
    follow_dialled,
    is_conference_sid,
    kick,
    parse_events,
    room,
)

routes = web.RouteTableDef()
INVALID = 20001


def conference_resource(conference: Conference) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{conference.account_sid}/Conferences/{conference.sid}"
    return {
        "account_sid": conference.account_sid,
        "date_created": rfc2822(conference.date_created),
        "date_updated": rfc2822(conference.date_updated),
        "api_version": API_VERSION,
        "friendly_name": conference.friendly_name,
        "region": "us1",
        "sid": conference.sid,
        "status": conference.status,
        "uri": f"{uri}.json",
        "subresource_uris": {
            "participants": f"{uri}/Participants.json",
            "recordings": f"{uri}/Recordings.json",
        },
        "reason_conference_ended": conference.reason_ended,
        "call_sid_ending_conference": conference.call_sid_ending,
    }


def participant_resource(conference: Conference, participant: Participant) -> dict[str, Any]:
    base = f"/{API_VERSION}/Accounts/{conference.account_sid}/Conferences/{conference.sid}"
    return {
        "account_sid": conference.account_sid,
        "call_sid": participant.call.sid,
        "label": participant.label,
        "call_sid_to_coach": participant.call_sid_to_coach,
        "coaching": participant.coaching,
        "conference_sid": conference.sid,
        "date_created": rfc2822(participant.date_created),
        "date_updated": rfc2822(participant.date_updated),
        "end_conference_on_exit": participant.end_conference_on_exit,
        "muted": participant.muted,
        "hold": participant.hold,
        "start_conference_on_enter": participant.start_conference_on_enter,
        "status": participant.status,
        "queue_time": str(participant.call.queue_time),
        "uri": f"{base}/Participants/{participant.call.sid}.json",
    }


def _not_found(request: web.Request) -> TwilioApiError:
    return TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)


def _conference(sb: Sandbox, request: web.Request, key: str = "sid") -> Conference:
    conference = sb.conferences.get(request.match_info[key])
    if conference is None:
        raise _not_found(request)
    return conference


def _participant(sb: Sandbox, request: web.Request) -> tuple[Conference, Participant]:
    conference = _conference(sb, request, "conference")
    participant = conference.find(request.match_info["participant"])
    if participant is None:
        raise _not_found(request)
    return conference, participant


def _flag(form: MultiDictProxy[Any], name: str) -> bool | None:
    value = _one(form, name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise TwilioApiError(INVALID, f"Invalid {name}: {value} (true or false)")
    return value.lower() == "true"


def _number(form: MultiDictProxy[Any], name: str, default: float, low: float, high: float) -> float:
    value = _one(form, name)
    try:
        number = float(value) if value is not None else default
    except ValueError as exc:
        raise TwilioApiError(INVALID, f"Invalid {name}: {value}") from exc
    return max(low, min(high, number))


# -- Conferences -------------------------------------------------------------------------------


@routes.get(f"{PREFIX}/Conferences.json")
async def list_conferences(request: web.Request) -> web.Response:
    """Newest first; filters FriendlyName, Status, DateCreated and DateUpdated (with < and >)."""
    sb = check_account(request)
    q = request.query
    created, updated = time_filter(q, "DateCreated"), time_filter(q, "DateUpdated")
    conferences = [
        c
        for c in reversed(sb.conferences.values())
        if equal_to(q, "FriendlyName", c.friendly_name)
        and equal_to(q, "Status", c.status)
        and created(c.date_created)
        and updated(c.date_updated)
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Conferences.json"
    return web.json_response(page(q, "conferences", conferences, lambda c: c.sid, conference_resource, path))


@routes.get(f"{PREFIX}/Conferences/{{sid}}.json")
async def fetch_conference(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(conference_resource(_conference(sb, request)))


@routes.post(f"{PREFIX}/Conferences/{{sid}}.json")
async def update_conference(request: web.Request) -> web.Response:
    """``Status=completed`` ends it; an ``AnnounceUrl`` is requested and announced to everyone."""
    sb = check_account(request)
    conference = _conference(sb, request)
    form = await request.post()
    status = _one(form, "Status")
    if status is not None and status != "completed":
        raise TwilioApiError(INVALID, f"Invalid Status {status!r}: only completed")
    announce_url, announce_method = _url(form, "AnnounceUrl"), _method(form, "AnnounceMethod")
    if status == "completed":
        end(sb.voice, conference, "conference-ended-via-api")
    elif announce_url is not None and conference.active:
        sb.spawn(
            announce(sb.voice, conference, announce_url, announce_method), name=f"announce {conference.sid}"
        )
    return web.json_response(conference_resource(conference))


@routes.get(f"{PREFIX}/Conferences/{{conference}}/Recordings.json")
async def list_conference_recordings(request: web.Request) -> web.Response:
    """Always empty: the sandbox records no conference (``record`` is accepted, not simulated)."""
    sb = check_account(request)
    conference = _conference(sb, request, "conference")
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Conferences/{conference.sid}/Recordings.json"
    return web.json_response(page(request.query, "recordings", [], lambda r: "", lambda r: {}, path))


# -- Participants ------------------------------------------------------------------------------


def _existing_room(sb: Sandbox, request: web.Request) -> Conference | None:
    """By SID (404 when unknown or over), or by name: the conference not yet over, if any."""
    key = request.match_info["conference"]
    if is_conference_sid(key):
        conference = sb.conferences.get(key)
        if conference is None or not conference.active:
            raise _not_found(request)
        return conference
    return next((c for c in sb.conferences.values() if c.friendly_name == key and c.active), None)


def _dial_request(form: MultiDictProxy[Any], to: str, from_: str) -> OutboundRequest:
    """The participant's call, placed as ``POST Calls.json`` would place it (its TwiML comes later)."""
    events = {e for v in _values(form, "StatusCallbackEvent") for e in v.replace(",", " ").split()}
    if events - CALL_EVENTS:
        raise TwilioApiError(21626, f"Invalid StatusCallbackEvent: {', '.join(sorted(events - CALL_EVENTS))}")
    detection = _one(form, "MachineDetection")
    if detection is not None and detection not in ("Enable", "DetectMessageEnd"):
        raise TwilioApiError(21625, f"Invalid MachineDetection value {detection}")
    amd_callback = _url(form, "AmdStatusCallback")
    return OutboundRequest(
        to=to,
        from_=_one(form, "CallerId") or from_,
        url=None,
        twiml=None,
        status_callback=_url(form, "StatusCallback"),
        status_callback_method=_method(form, "StatusCallbackMethod"),
        status_events=frozenset(events or {"completed"}),
        machine_detection=detection,
        async_amd=amd_callback is not None,
        async_amd_callback=amd_callback,
        async_amd_method=_method(form, "AmdStatusCallbackMethod"),
        machine_detection_timeout=_number(form, "MachineDetectionTimeout", 30, 3, 59),
        timeout=_number(form, "Timeout", 60, 5, 600),
    )


@routes.post(f"{PREFIX}/Conferences/{{conference}}/Participants.json")
async def add_participant(request: web.Request) -> web.Response:
    """Dial ``To`` (a number or ``client:``) and join it to the conference once it answers; the
    call is placed like any API call (the account's pace, the configured outcomes, AMD). By name,
    the conference is created if there is none. Everything is checked before anything is dialled."""
    sb = check_account(request)
    form = await request.post()
    to, from_ = check_numbers(sb, _one(form, "To"), _one(form, "From"))
    existing = _existing_room(sb, request)
    label, to_coach = _one(form, "Label"), _one(form, "CallSidToCoach")
    if label is not None and existing is not None and existing.find(label) is not None:
        raise TwilioApiError(INVALID, f"Label {label!r} is already used in this conference")
    coaching = bool(_flag(form, "Coaching"))
    coached = existing.find(to_coach) if existing is not None and to_coach else None
    if coaching and coached is None:
        raise TwilioApiError(INVALID, f"CallSidToCoach {to_coach} is not a participant of the conference")
    end_on_exit, start_on_enter, muted = (
        _flag(form, "EndConferenceOnExit"),
        _flag(form, "StartConferenceOnEnter"),
        _flag(form, "Muted"),
    )
    wait_url, wait_method = _url(form, "WaitUrl"), _method(form, "WaitMethod")
    room_callback = _url(form, "ConferenceStatusCallback"), _method(form, "ConferenceStatusCallbackMethod")
    room_events = parse_events(" ".join(_values(form, "ConferenceStatusCallbackEvent")))
    size = int(_number(form, "MaxParticipants", 250, 2, 250)) if _one(form, "MaxParticipants") else None
    time_limit = int(_number(form, "TimeLimit", 14400, 1, 14400))
    dialling = _dial_request(form, to, from_)
    if sb.voice.pacer.refuses():
        raise TwilioApiError(20429, "Too Many Requests", 429)
    conference = existing or room(sb.voice, request.match_info["conference"])
    adopt_settings(conference, *room_callback, room_events or None, size)
    # The call's own TwiML: into this conference (by SID), then nothing: it ends when it leaves.
    twiml = (
        f'<Response><Dial timeLimit="{time_limit}"><Conference>{escape(conference.sid)}'
        "</Conference></Dial></Response>"
    )
    call = sb.voice.start_outbound(replace(dialling, twiml=twiml))
    participant = Participant(
        call=call,
        label=label,
        muted=bool(muted),
        coaching=coaching,
        call_sid_to_coach=coached.call.sid if coaching and coached is not None else None,
        start_conference_on_enter=True if start_on_enter is None else start_on_enter,
        end_conference_on_exit=bool(end_on_exit),
        wait_url=wait_url,
        wait_method=wait_method,
    )
    conference.participants[call.sid] = participant
    call.note("dialled into conference", conference_sid=conference.sid, label=label)
    sb.spawn(follow_dialled(sb.voice, conference, participant), name=f"participant {call.sid}")
    return web.json_response(participant_resource(conference, participant), status=201)


@routes.get(f"{PREFIX}/Conferences/{{conference}}/Participants.json")
async def list_participants(request: web.Request) -> web.Response:
    """The participants in the room or being dialled into it; filters Muted, Hold and Coaching."""
    sb = check_account(request)
    conference = _conference(sb, request, "conference")
    q = request.query
    participants = [
        p
        for p in conference.participants.values()
        if not p.left.is_set()
        and equal_to(q, "Muted", str(p.muted).lower())
        and equal_to(q, "Hold", str(p.hold).lower())
        and equal_to(q, "Coaching", str(p.coaching).lower())
    ]
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Conferences/{conference.sid}/Participants.json"
    return web.json_response(
        page(
            q,
            "participants",
            participants,
            lambda p: p.call.sid,
            lambda p: participant_resource(conference, p),
            path,
        )
    )


@routes.get(f"{PREFIX}/Conferences/{{conference}}/Participants/{{participant}}.json")
async def fetch_participant(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(participant_resource(*_participant(sb, request)))


@routes.post(f"{PREFIX}/Conferences/{{conference}}/Participants/{{participant}}.json")
async def update_participant(request: web.Request) -> web.Response:
    """Muted, Hold (with HoldUrl's TwiML requested while held), Coaching/CallSidToCoach,
    EndConferenceOnExit, AnnounceUrl (to this participant); WaitUrl and BeepOnExit are accepted."""
    sb = check_account(request)
    conference, participant = _participant(sb, request)
    form = await request.post()
    _url(form, "WaitUrl")
    hold_url, hold_method = _url(form, "HoldUrl"), (_one(form, "HoldMethod") or "GET").upper()
    if hold_method not in ("GET", "POST"):
        raise TwilioApiError(21209, f"Invalid HoldMethod: {hold_method}")
    announce_url, announce_method = _url(form, "AnnounceUrl"), _method(form, "AnnounceMethod")
    change(
        sb.voice,
        conference,
        participant,
        muted=_flag(form, "Muted"),
        hold=_flag(form, "Hold"),
        hold_music=(hold_url, hold_method) if hold_url else None,
        coaching=_flag(form, "Coaching"),
        call_sid_to_coach=_one(form, "CallSidToCoach"),
        end_conference_on_exit=_flag(form, "EndConferenceOnExit"),
    )
    if announce_url is not None:
        task = announce(sb.voice, conference, announce_url, announce_method, participant)
        sb.spawn(task, name=f"announce {participant.call.sid}")
    return web.json_response(participant_resource(conference, participant))


@routes.delete(f"{PREFIX}/Conferences/{{conference}}/Participants/{{participant}}.json")
async def remove_participant(request: web.Request) -> web.Response:
    sb = check_account(request)
    conference, participant = _participant(sb, request)
    kick(sb.voice, conference, participant)
    return web.Response(status=204)
