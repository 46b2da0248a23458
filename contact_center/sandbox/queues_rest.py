"""Twilio's Queue and Member resources (2010-04-01): the queues ``<Enqueue>`` fills, listed and
fetched, their members listed and fetched (``Front`` is the longest waiting), and a member
dequeued to new TwiML (``POST Members/{CallSid}.json`` with ``Url``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.listing import page
from contact_center.sandbox.model import API_VERSION, Call, Interrupt, Queue, TwilioApiError, rfc2822, utcnow
from contact_center.sandbox.rest import PREFIX, _method, _url, check_account

routes = web.RouteTableDef()


def queue_resource(sb: Sandbox, queue: Queue) -> dict[str, Any]:
    waits = queue.waits
    return {
        "date_updated": rfc2822(queue.date_created),
        "current_size": len(queue.members),
        "friendly_name": queue.friendly_name,
        "uri": f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Queues/{queue.sid}.json",
        "account_sid": sb.config.account_sid,
        "average_wait_time": round(sum(waits) / len(waits)) if waits else 0,
        "sid": queue.sid,
        "date_created": rfc2822(queue.date_created),
        "max_size": sb.config.max_queue_size,
    }


def member_resource(sb: Sandbox, queue: Queue, call: Call) -> dict[str, Any]:
    waited = sb.now() - queue.entered.get(call.sid, sb.now())
    return {
        "call_sid": call.sid,
        "date_enqueued": rfc2822(utcnow() - timedelta(seconds=waited)),
        "position": queue.position(call),
        "uri": f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Queues/{queue.sid}/Members/{call.sid}.json",
        "wait_time": round(waited / sb.config.time_scale),
        "queue_sid": queue.sid,
    }


def _not_found(request: web.Request) -> TwilioApiError:
    return TwilioApiError(20404, f"The requested resource {request.path} was not found", 404)


def _queue(sb: Sandbox, request: web.Request, key: str) -> Queue:
    sid = request.match_info[key]
    queue = next((q for q in sb.queues.values() if q.sid == sid), None)
    if queue is None:
        raise _not_found(request)
    return queue


def _member(sb: Sandbox, request: web.Request) -> tuple[Queue, Call]:
    queue = _queue(sb, request, "queue")
    sid = request.match_info["call"]
    member = queue.members[0] if sid == "Front" and queue.members else None
    member = member or next((c for c in queue.members if c.sid == sid), None)
    if member is None:
        raise _not_found(request)
    return queue, member


@routes.get(f"{PREFIX}/Queues.json")
async def list_queues(request: web.Request) -> web.Response:
    sb = check_account(request)
    queues = list(sb.queues.values())
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Queues.json"
    return web.json_response(
        page(request.query, "queues", queues, lambda q: q.sid, lambda q: queue_resource(sb, q), path)
    )


@routes.get(f"{PREFIX}/Queues/{{sid}}.json")
async def fetch_queue(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(queue_resource(sb, _queue(sb, request, "sid")))


@routes.get(f"{PREFIX}/Queues/{{queue}}/Members.json")
async def list_members(request: web.Request) -> web.Response:
    """The callers waiting, longest first."""
    sb = check_account(request)
    queue = _queue(sb, request, "queue")
    path = f"/{API_VERSION}/Accounts/{sb.config.account_sid}/Queues/{queue.sid}/Members.json"
    members = list(queue.members)
    return web.json_response(
        page(
            request.query,
            "queue_members",
            members,
            lambda c: c.sid,
            lambda c: member_resource(sb, queue, c),
            path,
        )
    )


@routes.get(f"{PREFIX}/Queues/{{queue}}/Members/{{call}}.json")
async def fetch_member(request: web.Request) -> web.Response:
    sb = check_account(request)
    return web.json_response(member_resource(sb, *_member(sb, request)))


@routes.post(f"{PREFIX}/Queues/{{queue}}/Members/{{call}}.json")
async def dequeue_member(request: web.Request) -> web.Response:
    """Take the member out of the queue to run the TwiML at ``Url`` (its Enqueue action is told
    ``redirected``)."""
    sb = check_account(request)
    queue, call = _member(sb, request)
    form = await request.post()
    url = _url(form, "Url")
    if url is None:
        raise TwilioApiError(21205, "Url parameter is required")
    answer = member_resource(sb, queue, call)
    call.interrupt(Interrupt("redirect", by="api", url=url, method=_method(form, "Method")))
    return web.json_response(answer)
