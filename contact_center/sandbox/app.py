"""The sandbox as an aiohttp application: standalone, or mounted on the service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from contact_center.sandbox import rest, simulation
from contact_center.sandbox.config import SandboxConfig
from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.keys import SANDBOX
from contact_center.sandbox.model import TwilioApiError
from contact_center.sandbox.rest import twilio_error
from contact_center.sandbox.simulation import SimulationError
from contact_center.server_header import hide_server_software


@web.middleware
async def twilio_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Learn the sandbox's public URL; answer errors as JSON (REST ones in Twilio's shape)."""
    request.app[SANDBOX].learn_public_url(str(request.url.origin()), request.path)
    try:
        return await handler(request)
    except TwilioApiError as exc:
        return twilio_error(exc.code, exc.message, exc.status)
    except SimulationError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except web.HTTPNotFound:
        if "/2010-04-01/" in request.path:
            return twilio_error(20404, f"The requested resource {request.path} was not found", 404)
        raise


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    sandbox = app[SANDBOX]
    await sandbox.start()
    try:
        yield
    finally:
        await sandbox.close()


def create_sandbox_app(config: SandboxConfig) -> web.Application:
    """A Twilio sandbox; serve it alone or ``app.add_subapp("/twilio-sandbox", ...)``.

    Its background tasks (ringing, TwiML, callbacks) are cancelled when the application cleans up.
    """
    app = web.Application(middlewares=[twilio_errors])
    app[SANDBOX] = Sandbox(config)
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_routes(rest.routes)
    app.router.add_routes(simulation.routes)
    hide_server_software(app)
    return app
