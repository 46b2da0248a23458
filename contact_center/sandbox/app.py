"""The sandbox as an aiohttp application: standalone, or mounted on the service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection

from aiohttp import web, web_response
from aiohttp.typedefs import Middleware

from contact_center.sandbox import (
    call_recordings,
    conferences,
    deletion,
    media,
    queues_rest,
    rest,
    simulation,
)
from contact_center.sandbox.access import EVERYTHING, Authorize, has_control_token
from contact_center.sandbox.config import SandboxConfig
from contact_center.sandbox.engine import Sandbox
from contact_center.sandbox.keys import SANDBOX
from contact_center.sandbox.model import TwilioApiError
from contact_center.sandbox.rest import twilio_error
from contact_center.sandbox.simulation import SimulationError

NEUTRAL_SERVER = "contact-center"
"""What aiohttp's own answers (to malformed requests) name as the server; the service's value
(``contact_center.server_header``), as both may run in one process and this one is global."""


@web.middleware
async def twilio_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer errors as JSON (REST ones in Twilio's shape)."""
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
    except web.HTTPMethodNotAllowed:
        if "/2010-04-01/" in request.path:
            return twilio_error(20004, "Method not allowed", 405)
        raise


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_access(
    config: SandboxConfig, authorize: Authorize | None, control: Collection[web.AbstractResource]
) -> Middleware:
    """``/sandbox/...`` (the ``control`` resources) only with the control token or a grant of
    ``authorize``; a grant for one agent browser reaches only the routes of agent browsers."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None or resource not in control:
            return await handler(request)
        grant = EVERYTHING if has_control_token(request, config.control_token) else None
        if grant is None and authorize is not None:
            grant = await authorize(request)
        if grant is None:
            return web.json_response(
                {"error": "sign in as an admin, or send the sandbox control token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="twilio-sandbox"'},
            )
        if not grant.everything and resource.name not in simulation.CLIENT_ROUTES:
            raise SimulationError("this needs an admin or the sandbox control token", 403)
        request[simulation.GRANT] = grant
        request.app[SANDBOX].learn_public_url(str(request.url.origin()), request.path)
        return await handler(request)

    return check


async def _drop_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)


def _hide_server_software(app: web.Application) -> None:
    """No answer names the server's software: no ``Server`` header on the sandbox's responses, and
    no versions in aiohttp's own."""
    app.on_response_prepare.append(_drop_server_header)
    # aiohttp reads this default when it prepares a response that has no Server header.
    web_response.SERVER_SOFTWARE = NEUTRAL_SERVER  # type: ignore[attr-defined]


async def _stop_background(app: web.Application) -> None:
    """At shutdown, before the server waits for its connections: stop ringing, TwiML and callbacks.
    Mounted in the service, a callback whose connection the server accepted just as it began to
    close is never read (aiohttp ignores what arrives on a closing connection), and the server
    would wait for that connection until the callback's own timeout (15 s by default)."""
    sandbox = app[SANDBOX]
    sandbox.closing = True
    await sandbox.cancel_tasks()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    sandbox = app[SANDBOX]
    await sandbox.start()
    try:
        yield
    finally:
        await sandbox.close()


def create_sandbox_app(config: SandboxConfig, authorize: Authorize | None = None) -> web.Application:
    """A Twilio sandbox; serve it alone or ``app.add_subapp("/twilio-sandbox", ...)``.

    Driving it (``/sandbox/...``) takes ``config.control_token``, or a grant of ``authorize``
    (the mounting application's sign-in); its REST API takes the account's credentials. Its
    background tasks (ringing, TwiML, callbacks) are cancelled when the application cleans up.
    """
    control: set[web.AbstractResource] = set()
    app = web.Application(middlewares=[twilio_errors, control_access(config, authorize, control)])
    app[SANDBOX] = Sandbox(config)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_stop_background)
    app.router.add_routes(rest.routes)
    app.router.add_routes(deletion.routes)
    app.router.add_routes(conferences.routes)
    app.router.add_routes(call_recordings.routes)
    app.router.add_routes(queues_rest.routes)
    app.router.add_routes(media.routes)
    control.update(route.resource for route in app.router.add_routes(simulation.routes) if route.resource)
    _hide_server_software(app)
    return app
