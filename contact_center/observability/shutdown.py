"""A graceful stop: take no new work, finish what is in flight, hand the sockets back.

On SIGTERM the CLI calls :func:`begin_drain`: ``/readyz`` answers 503 "draining" (a load balancer
takes the instance out) while requests are still served for ``server.drain_seconds``; agents'
sockets are closed at once with 1001 (going away), so consoles reconnect to another instance.
Then the listening socket closes, requests in flight get ``server.shutdown_timeout`` seconds, the
chat visitors' sockets are closed with 1001 too, and the background work stops.
"""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

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


def setup_shutdown(app: web.Application) -> None:
    app[DRAINING] = Draining()
    app.on_shutdown.append(close_agent_sockets)
