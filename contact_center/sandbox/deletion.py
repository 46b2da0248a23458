"""Removing what the account keeps, as Twilio does: DELETE of calls, messages and recordings
(204, only once a call or message is over: 409/20009 before), and a message's body redacted by
``POST Messages/{Sid}.json`` with ``Body=""`` (200)."""

from __future__ import annotations

from aiohttp import web

from contact_center.sandbox.model import TwilioApiError
from contact_center.sandbox.rest import PREFIX, check_account, message_resource

FINAL_MESSAGE_STATUSES = frozenset({"delivered", "undelivered", "failed", "received", "read", "canceled"})
routes = web.RouteTableDef()


def _not_found(request: web.Request) -> TwilioApiError:
    return TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)


def _in_use(what: str, status: str) -> TwilioApiError:
    return TwilioApiError(20009, f"Cannot delete or redact a {what} in status {status}", 409)


@routes.delete(f"{PREFIX}/Calls/{{sid}}.json")
async def delete_call(request: web.Request) -> web.Response:
    sb = check_account(request)
    call = sb.calls.get(request.match_info["sid"])
    if call is None:
        raise _not_found(request)
    if not call.is_final:
        raise _in_use("call", call.status)
    del sb.calls[call.sid]
    return web.Response(status=204)


@routes.delete(f"{PREFIX}/Messages/{{sid}}.json")
async def delete_message(request: web.Request) -> web.Response:
    sb = check_account(request)
    message = sb.messages.get(request.match_info["sid"])
    if message is None:
        raise _not_found(request)
    if message.status not in FINAL_MESSAGE_STATUSES:
        raise _in_use("message", message.status)
    del sb.messages[message.sid]
    return web.Response(status=204)


@routes.post(f"{PREFIX}/Messages/{{sid}}.json")
async def update_message(request: web.Request) -> web.Response:
    """``Body=""`` redacts the body; any other body is refused (only redaction is an update)."""
    sb = check_account(request)
    message = sb.messages.get(request.match_info["sid"])
    if message is None:
        raise _not_found(request)
    form = await request.post()
    if "Body" in form:
        if str(form["Body"]) != "":
            raise TwilioApiError(21619, "A message body can only be redacted: send Body as an empty string")
        if message.status not in FINAL_MESSAGE_STATUSES:
            raise _in_use("message", message.status)
        message.body = ""
        message.note("body redacted")
    return web.json_response(message_resource(message))


@routes.delete(f"{PREFIX}/Recordings/{{sid}}.json")
async def delete_recording(request: web.Request) -> web.Response:
    sb = check_account(request)
    if sb.recordings.pop(request.match_info["sid"], None) is None:
        raise _not_found(request)
    return web.Response(status=204)
