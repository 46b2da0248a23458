"""Every request gets an id (the client's ``X-Request-Id`` when it is a sane one, else a new
one), written on every log line while it is handled and returned on its response; its latency
is observed by route."""

from __future__ import annotations

import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from contact_center.observability.metrics import METRICS
from crm_core import log_context

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
# What a load balancer or a client may send: letters, digits and a few separators, bounded, so a
# forged header cannot put anything odd into a log line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# The routes whose {id} is a ticket's, named on every log line of the request.
_TICKET_ROUTES = "/api/v1/tickets/{id}"


_TICKET_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only: "²".isdigit() is true


def request_id_of(header: str | None) -> str:
    if header and _SANE_ID.match(header):
        return header
    return uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: names the request for the log and times it."""
    request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = request_id
    log_context.request_id.set(request_id)
    resource = request.match_info.route.resource
    ticket = request.match_info.get("id", "")
    on_ticket = resource is not None and resource.canonical.startswith(_TICKET_ROUTES)
    if on_ticket and _TICKET_ID.fullmatch(ticket):
        log_context.ticket_id.set(int(ticket))
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        # A socket's lifetime is not a latency: sockets are counted by their own figures.
        if not isinstance(response, web.WebSocketResponse) and (metrics := request.app.get(METRICS)):
            metrics.observe_request(request, status, time.perf_counter() - started)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response, files and sockets included, names its request."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id


def setup_request_context(app: web.Application) -> None:
    app.on_response_prepare.append(add_request_id)
