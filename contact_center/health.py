"""Liveness and readiness probes.

``/readyz`` answers 503 only when the instance should get no work: the database is unreachable
(nothing can be recorded), or it is shutting down ("draining"). A failing Redis or event bus, or
a mailbox that cannot connect, leaves calls and texts working (delayed notices, mail later): 200
with ``"status": "degraded"`` and the failing components named, so a load balancer keeps the
instance while an operator's alert still fires. Mailbox and Twilio details are shown to the
clients ``/metrics`` admits (loopback by default), the summary to everyone.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import text

from contact_center.appkeys import RUNTIME, SETTINGS
from contact_center.observability.metrics import MAILBOXES, allowed
from contact_center.observability.state import WatchedMailbox
from contact_center.settings import Settings
from contact_center.twilio_account import uses_sandbox

CHECK_TIMEOUT_SECONDS = 3.0
CONNECTED_STATES = frozenset({"syncing", "idle", "polling"})


class Draining:
    """Set once the instance was told to stop: it finishes what it has and takes nothing new."""

    def __init__(self) -> None:
        self.is_set = False

    def set(self) -> None:
        self.is_set = True


DRAINING = web.AppKey("draining", Draining)

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(probe: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            ok = await probe()
    except TimeoutError:
        return "error: no answer"
    except Exception as exc:  # any driver error is a failed check
        return f"error: {type(exc).__name__}"
    return "ok" if ok is not False else "error: not running"


def _mailbox(watcher: WatchedMailbox) -> dict[str, Any]:
    last = watcher.last_poll_at
    return {
        "state": watcher.state,
        "connected": watcher.state in CONNECTED_STATES,
        "last_error": watcher.last_error,
        "last_poll_at": datetime.fromtimestamp(last, UTC).isoformat() if last is not None else None,
    }


def _twilio(settings: Settings) -> dict[str, Any]:
    if uses_sandbox(settings):
        return {"account": "sandbox", "account_sid": settings.twilio.account_sid}
    return {"account": "twilio", "account_sid": settings.twilio.account_sid}


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    if (draining := request.app.get(DRAINING)) is not None and draining.is_set:
        return web.json_response({"status": "draining", "checks": {}}, status=503)
    runtime = request.app[RUNTIME]

    async def database() -> None:
        async with runtime.uow.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    checks: dict[str, str] = {"database": await _check(database)}
    if runtime.redis is not None:
        checks["redis"] = await _check(runtime.redis.ping)
    checks["event_bus"] = await _check(runtime.bus.ping)
    watchers = request.app.get(MAILBOXES) or []
    for watcher in watchers:
        # Connecting for the first time is not a failure; failing to (again) is.
        checks[f"mailbox:{watcher.name}"] = "ok" if watcher.state != "reconnecting" else "error: disconnected"
    failing = sorted(name for name, value in checks.items() if value != "ok")
    if checks["database"] != "ok":
        status, code = "not ready", 503
    elif failing:
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    body: dict[str, Any] = {"status": status, "checks": checks}
    if failing:
        body["failing"] = failing
    settings = request.app[SETTINGS]
    if allowed(settings.metrics, request) is None:
        body["mailboxes"] = {w.name: _mailbox(w) for w in watchers}
        body["twilio"] = _twilio(settings)
    return web.json_response(body, status=code)
