"""The agent console and the supervisors' wallboard: static pages served by the service itself.

The pages are plain HTML, CSS and JavaScript modules under ``contact_center/web`` (no build step);
they speak only the public REST API and the agent WebSocket. Every page answers with a strict
Content-Security-Policy: scripts and styles from this service only (and Twilio's endpoints when the
browser softphone is configured), so data the API returns can never run as code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from contact_center.settings import Settings

WEB_DIR = Path(__file__).parent / "web"
STATIC_PREFIX = "/static"
# Page path -> HTML file under web/.
PAGES = {
    "/login": "login.html",
    "/console": "console.html",
    "/customers/{id:\\d+}": "customer.html",
    "/tickets": "tickets.html",
    "/tickets/{id:\\d+}": "ticket.html",
    "/wallboard": "wallboard.html",
}
TWILIO_ORIGINS = "https://*.twilio.com wss://*.twilio.com"


def content_security_policy(settings: Settings) -> str:
    twilio = settings.twilio
    browser_phone = bool(twilio.api_key_sid and twilio.twiml_app_sid)
    connect = "'self' " + TWILIO_ORIGINS if browser_phone else "'self'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; media-src 'self' https: blob:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )


def _page(file_name: str, policy: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = WEB_DIR / file_name

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            path,
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": policy,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    return serve


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console")


async def _no_cache_static(request: web.Request, response: web.StreamResponse) -> None:
    """Static files are revalidated (ETag/Last-Modified), so a new release shows at once."""
    if request.path.startswith(STATIC_PREFIX + "/"):
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")


def setup_web(app: web.Application, settings: Settings) -> None:
    """Serve the console's pages and static files."""
    policy = content_security_policy(settings)
    app.router.add_get("/", _home)
    for route, file_name in PAGES.items():
        app.router.add_get(route, _page(file_name, policy))
    app.router.add_static(STATIC_PREFIX, WEB_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_no_cache_static)
