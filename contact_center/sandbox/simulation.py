"""``/sandbox/...``: drive the simulated phone network (callers, texters, agents' browsers) over JSON.

Every route here needs a grant (:mod:`contact_center.sandbox.access`, checked by the
application's middleware): everything, or one agent browser, which reaches only the routes in
:data:`CLIENT_ROUTES` and only for its own identity and calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from contact_center.sandbox.access import ControlGrant
from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.keys import SANDBOX
from contact_center.sandbox.model import Call, Message
from contact_center.sandbox.rest import message_resource

routes = web.RouteTableDef()
SETTLE_TIMEOUT = 5.0
GRANT = web.RequestKey("sandbox_control_grant", ControlGrant)
# What an agent's own browser does: see its ringing calls, answer, reject, call out, hang up.
CLIENT_ROUTES = frozenset({"client-ringing", "client-answer", "client-reject", "client-call", "call-hangup"})


class SimulationError(Exception):
    """A bad request to ``/sandbox/...``: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def bad_request(message: str, status: int = 400) -> SimulationError:
    return SimulationError(message, status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise bad_request("the body must be a JSON object") from exc
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"'{key}' is required")
        return ""
    if not isinstance(value, str | int):
        raise bad_request(f"'{key}' must be a string")
    return str(value)


def _seconds(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise bad_request(f"'{key}' must be a number of seconds")
    return float(value)


def call_state(sb: Sandbox, call: Call) -> dict[str, Any]:
    """A call as tests want to see it: status, who it is bridged to, and everything that happened."""
    legs = [c.sid for c in sb.calls.values() if c.parent_call_sid == call.sid]
    return {
        "sid": call.sid,
        "status": call.status,
        "direction": call.direction,
        "from": call.from_,
        "to": call.to,
        "parent_call_sid": call.parent_call_sid,
        "answered_by": call.answered_by,
        "duration": call.duration,
        "queue": call.queue.friendly_name if call.queue else None,
        "queue_position": call.queue.position(call) if call.queue else None,
        "bridged_with": call.bridge.other(call).sid if call.bridge else None,
        "conference": next(
            (c.friendly_name for c in sb.conferences.values() if any(p.call is call for p in c.present())),
            None,
        ),
        "ringing_client": call.ringing_client,
        "legs": legs,
        "ended": call.is_final,
        "settled": settled(call),
        "pending_callbacks": call.pending_callbacks,
        "log": call.log,
    }


def settled(call: Call) -> bool:
    """Ended, and every webhook about it (actions, status callbacks) has been answered."""
    return call.is_final and call.pending_callbacks == 0 and (call.runner is None or call.runner.done())


def _grant(request: web.Request) -> ControlGrant:
    if GRANT not in request:  # set by the application's middleware for every route here
        raise bad_request("sign in as an admin, or send the sandbox control token", 401)
    return request[GRANT]


def _own_client(request: web.Request) -> str:
    """The ``{identity}`` of the path, which a grant for one agent browser must name."""
    identity = request.match_info["identity"]
    grant = _grant(request)
    if not grant.everything and grant.client_identity != identity:
        raise bad_request(f"only client {grant.client_identity!r} may be driven with this sign-in", 403)
    return identity


def _find_call(sb: Sandbox, request: web.Request) -> Call:
    call = sb.calls.get(request.match_info["sid"])
    if call is None:
        raise bad_request(f"no call {request.match_info['sid']}", 404)
    return call


@routes.get("/sandbox")
async def index(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return web.json_response(
        {
            "account_sid": sb.config.account_sid,
            "rest_base_url": sb.rest_base,
            "numbers": {
                number: {
                    "voice_url": n.voice_url,
                    "voice_status_callback": n.voice_status_callback,
                    "sms_url": n.sms_url,
                }
                for number, n in sb.config.numbers.items()
            },
            "time_scale": sb.config.time_scale,
        }
    )


@routes.post("/sandbox/calls")
async def start_call(request: web.Request) -> web.Response:
    """A caller dials a sandbox number: ``{from, to, digits?, hangup_after_seconds?, caller_name?}``."""
    sb = request.app[SANDBOX]
    data = await _body(request)
    try:
        call = sb.voice.start_inbound(
            _text(data, "from", required=True),
            _text(data, "to", required=True),
            digits=_text(data, "digits"),
            hangup_after=_seconds(data, "hangup_after_seconds"),
            caller_name=_text(data, "caller_name") or None,
            record_seconds=_seconds(data, "record_seconds"),
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return web.json_response({"call_sid": call.sid, "status": call.status}, status=201)


@routes.get("/sandbox/calls")
async def list_calls(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return web.json_response(
        {"calls": [{k: v for k, v in call_state(sb, c).items() if k != "log"} for c in sb.calls.values()]}
    )


@routes.get("/sandbox/calls/{sid}")
async def get_call(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return web.json_response(call_state(sb, _find_call(sb, request)))


@routes.post("/sandbox/calls/{sid}/hangup", name="call-hangup")
async def hangup(request: web.Request) -> web.Response:
    """Hang up ``{"side": "caller"|"agent"}`` (default: this leg) of a call; with a grant for one
    agent browser, only that browser's own leg."""
    sb = request.app[SANDBOX]
    grant = _grant(request)
    call = _find_call(sb, request)
    data = await _body(request)
    side = _text(data, "side")
    if not grant.everything and side != "agent":
        raise bad_request("an agent hangs up their own leg only: 'side' must be 'agent'", 403)
    target = call
    if side == "agent":
        if call.to.startswith("client:"):
            target = call
        elif call.bridge is not None:
            target = call.bridge.other(call)
        else:
            ringing = [c for c in sb.calls.values() if c.parent_call_sid == call.sid and not c.is_final]
            if not ringing:
                raise bad_request("no agent leg on this call", 409)
            target = ringing[0]
    elif side == "caller":
        parent = sb.calls.get(call.parent_call_sid or "")
        target = parent if parent is not None else call
    elif side:
        raise bad_request("'side' is 'caller' or 'agent'")
    own = f"client:{grant.client_identity}"
    if not grant.everything and own not in (target.to, target.from_):
        raise bad_request(f"call {target.sid} is not a leg of {own}", 403)
    if not sb.voice.hangup(target, by=side or "caller"):
        raise bad_request(f"call {target.sid} has already ended ({target.status})", 409)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(target.ended.wait(), SETTLE_TIMEOUT)
    return web.json_response(call_state(sb, target))


@routes.post("/sandbox/calls/{sid}/digits")
async def press_digits(request: web.Request) -> web.Response:
    """The caller presses keys now: ``{"digits": "12#"}`` (commas split answers to several prompts)."""
    sb = request.app[SANDBOX]
    call = _find_call(sb, request)
    data = await _body(request)
    if call.is_final:
        raise bad_request("the call has ended", 409)
    sb.voice.press(call, _text(data, "digits", required=True))
    return web.json_response({"call_sid": call.sid, "pending_digits": call.digits})


@routes.get("/sandbox/clients/{identity}/ringing", name="client-ringing")
async def ringing(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    legs = sb.voice.ringing(_own_client(request))
    return web.json_response(
        {
            "calls": [
                {"call_sid": c.sid, "parent_call_sid": c.parent_call_sid, "from": c.from_, "to": c.to}
                for c in legs
            ]
        }
    )


async def _decide(request: web.Request, decision: str) -> web.Response:
    sb = request.app[SANDBOX]
    identity = _own_client(request)
    data = await _body(request)
    leg = sb.voice.decide(identity, _text(data, "call_sid") or None, decision)
    if leg is None:
        raise bad_request(f"no call is ringing client {identity!r}", 404)
    waits = [asyncio.ensure_future(e.wait()) for e in (leg.answered_event, leg.ended)]
    try:
        await asyncio.wait(waits, timeout=SETTLE_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
    return web.json_response(
        {"call_sid": leg.sid, "parent_call_sid": leg.parent_call_sid, "status": leg.status}
    )


@routes.post("/sandbox/clients/{identity}/answer", name="client-answer")
async def answer(request: web.Request) -> web.Response:
    """The agent's browser answers ``{"call_sid"?}`` (the ringing leg or its parent; default: oldest)."""
    return await _decide(request, "answer")


@routes.post("/sandbox/clients/{identity}/reject", name="client-reject")
async def reject(request: web.Request) -> web.Response:
    return await _decide(request, "reject")


@routes.post("/sandbox/clients/{identity}/calls", name="client-call")
async def client_call(request: web.Request) -> web.Response:
    """The agent's browser places a call through the TwiML App: ``{to, params?, digits?}``."""
    sb = request.app[SANDBOX]
    identity = _own_client(request)
    data = await _body(request)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise bad_request("'params' must be an object")
    try:
        call = sb.voice.start_client_call(
            identity,
            _text(data, "to"),
            params={str(k): str(v) for k, v in params.items()},
            digits=_text(data, "digits"),
            hangup_after=_seconds(data, "hangup_after_seconds"),
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return web.json_response({"call_sid": call.sid, "status": call.status}, status=201)


def _message_state(message: Message) -> dict[str, Any]:
    return {**message_resource(message), "media_urls": message.media_urls, "log": message.log}


@routes.post("/sandbox/sms")
async def receive_sms(request: web.Request) -> web.Response:
    """A phone texts a sandbox number: ``{from, to, body, media_urls?}``; the reply TwiML is followed."""
    sb = request.app[SANDBOX]
    data = await _body(request)
    media = data.get("media_urls") or []
    if not isinstance(media, list) or not all(isinstance(m, str) for m in media):
        raise bad_request("'media_urls' must be a list of URLs")
    body = data.get("body", "")
    if not isinstance(body, str):
        raise bad_request("'body' must be a string")
    try:
        message, replies = await sb.sms.receive(
            _text(data, "from", required=True), _text(data, "to", required=True), body, media
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return web.json_response(
        {
            "message_sid": message.sid,
            "message": _message_state(message),
            "replies": [_message_state(r) for r in replies],
        },
        status=201,
    )


@routes.post("/sandbox/messages/outcomes")
async def force_message_outcome(request: web.Request) -> web.Response:
    """Texts to a number end as told: ``{to, outcome: delivered|undelivered|failed|null, error_code?}``."""
    sb = request.app[SANDBOX]
    data = await _body(request)
    outcome = data.get("outcome")
    code = data.get("error_code")
    if outcome is not None and not isinstance(outcome, str):
        raise bad_request("'outcome' must be a string or null")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
        raise bad_request("'error_code' must be an integer")
    to = _text(data, "to", required=True)
    try:
        sb.sms.force_outcome(to, outcome, code)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return web.json_response({"to": to, "outcome": outcome, "error_code": code})


@routes.post("/sandbox/calls/outcomes")
async def script_call_outcome(request: web.Request) -> web.Response:
    """Calls to a number end as told: ``{to, outcome: human|machine|fax|busy|no-answer|failed|null,
    answered_by?}`` (``answered_by``: what machine detection concludes, ``unknown`` at its timeout)."""
    sb = request.app[SANDBOX]
    data = await _body(request)
    outcome, answered_by = data.get("outcome"), data.get("answered_by")
    if outcome is not None and not isinstance(outcome, str):
        raise bad_request("'outcome' must be a string or null")
    if answered_by is not None and not isinstance(answered_by, str):
        raise bad_request("'answered_by' must be a string")
    to = _text(data, "to", required=True)
    try:
        sb.voice.script(to, outcome, answered_by)
    except ValueError as exc:
        raise bad_request(str(exc)) from exc
    return web.json_response({"to": to, "outcome": outcome, "answered_by": answered_by})


@routes.post("/sandbox/calls/throttle")
async def throttle_calls(request: web.Request) -> web.Response:
    """The next ``{count}`` ``POST Calls.json`` are refused with 429 / 20429 Too Many Requests."""
    sb = request.app[SANDBOX]
    count = (await _body(request)).get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise bad_request("'count' must be a non-negative integer")
    sb.voice.pacer.refuse_next = count
    return web.json_response({"count": count})


@routes.get("/sandbox/messages")
async def list_messages(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return web.json_response({"messages": [_message_state(m) for m in sb.messages.values()]})


@routes.get("/sandbox/messages/{sid}")
async def get_message(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    message = sb.messages.get(request.match_info["sid"])
    if message is None:
        raise bad_request(f"no message {request.match_info['sid']}", 404)
    return web.json_response(_message_state(message))


@routes.get("/sandbox/queues")
async def queues(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    return web.json_response(
        {
            "queues": [
                {
                    "sid": q.sid,
                    "friendly_name": q.friendly_name,
                    "members": [c.sid for c in q.members],
                    "average_wait_time": round(sum(q.waits) / len(q.waits)) if q.waits else 0,
                }
                for q in sb.queues.values()
            ]
        }
    )


@routes.get("/sandbox/conferences")
async def conferences(request: web.Request) -> web.Response:
    """Every conference with the participants in it (or being dialled into it)."""
    sb = request.app[SANDBOX]
    return web.json_response(
        {
            "conferences": [
                {
                    "sid": c.sid,
                    "friendly_name": c.friendly_name,
                    "status": c.status,
                    "reason_ended": c.reason_ended,
                    "participants": [
                        {
                            "call_sid": p.call.sid,
                            "label": p.label,
                            "status": p.status,
                            "muted": p.muted,
                            "hold": p.hold,
                            "coaching": p.coaching,
                            "call_sid_to_coach": p.call_sid_to_coach,
                        }
                        for p in c.participants.values()
                        if not p.left.is_set()
                    ],
                }
                for c in sb.conferences.values()
            ]
        }
    )


@routes.get("/sandbox/debugger")
async def debugger(request: web.Request) -> web.Response:
    """Errors Twilio's debugger would show: 11200 (webhook failed), 12100 (bad TwiML), ..."""
    return web.json_response({"errors": request.app[SANDBOX].debugger})


@routes.post("/sandbox/reset")
async def reset(request: web.Request) -> web.Response:
    """Forget everything; ``{"seed": n}`` re-seeds the random outcomes."""
    sb = request.app[SANDBOX]
    data = await _body(request)
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise bad_request("'seed' must be an integer")
    await sb.reset(seed)
    return web.json_response({"reset": True})
