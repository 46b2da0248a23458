"""A graceful stop: take no new work, finish what is in flight, hand the sockets back.

On SIGTERM the CLI calls :func:`begin_drain`: ``/readyz`` answers 503 "draining" (a load balancer
takes the instance out) while requests are still served for ``server.drain_seconds``; agents'
sockets are closed at once with 1001 (going away), so consoles reconnect to another instance.
New sockets (agents' and chat visitors') are refused with 503 before the upgrade while it drains,
so a console or widget reconnects to another instance. Then the listening socket closes, requests
in flight get ``server.shutdown_timeout`` seconds, the chat visitors' sockets are closed with 1001
too, and the background work stops.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from contact_center.health import DRAINING, Draining
from contact_center.realtime import SOCKETS

log = logging.getLogger(__name__)


async def close_agent_sockets(app: web.Application) -> None:
    """Close every agent socket here with 1001: an open one would hold the shutdown back."""
    sockets = app.get(SOCKETS)
    if sockets is not None:
        with contextlib.suppress(Exception):
            await sockets.close_all()


async def begin_drain(app: web.Application) -> None:
    app[DRAINING].set()
    log.info("draining: /readyz answers 503, agent sockets are closed with 1001")
    await close_agent_sockets(app)


# How soon a refused socket may try again (behind a load balancer it reaches another instance).
RETRY_AFTER_SECONDS = 1


@web.middleware
async def refuse_sockets_while_draining(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A WebSocket upgrade asked of a draining instance gets 503 (try again later) before the
    upgrade: the socket would be closed moments later, and its client should find another one."""
    draining = request.app.get(DRAINING)
    if draining is not None and draining.is_set and _upgrading(request):
        return web.json_response(
            {"error": "draining", "detail": "this instance is stopping; connect again"},
            status=503,
            headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_SECONDS)},
        )
    return await handler(request)


def _upgrading(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def setup_shutdown(app: web.Application) -> None:
    app[DRAINING] = Draining()
    app.on_shutdown.append(close_agent_sockets)
