"""The agent console and the supervisors' wallboard: static pages served by the service itself.

The pages are plain HTML, CSS and JavaScript modules under ``contact_center/web`` (no build step);
they speak only the public REST API and the agent WebSocket. Every page answers with a strict
Content-Security-Policy: scripts and styles from this service only (and Twilio's endpoints when the
browser softphone is configured), so data the API returns can never run as code.

After signing in, the login page goes on to its ``next`` parameter only when that is a page of this
site (:func:`same_site_path`; js/paths.js applies the same rule in the browser). The server sends
``/login?next=<anything else>`` back to a plain ``/login``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

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
    "/campaigns": "campaigns.html",
    "/campaigns/{id:\\d+}": "campaigns-live.html",
}
TWILIO_ORIGINS = "https://*.twilio.com wss://*.twilio.com"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What a browser's URL parser drops before reading a URL: C0 controls and spaces at either end,
# tabs and newlines anywhere.
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_TAB_AND_NEWLINE = str.maketrans("", "", "\t\n\r")


def same_site_path(target: str, origin: str) -> str | None:
    """``target`` as a path of the site at ``origin`` (``scheme://host[:port]``), or None when a
    browser would take it anywhere else.

    ``target`` is read the way a browser reads a link (backslashes as slashes, tabs and newlines
    dropped), resolved against ``origin``; the result must have the site's scheme and host and a
    path that starts with exactly one ``/``.
    """
    text = target.strip(_C0_AND_SPACE).translate(_TAB_AND_NEWLINE)
    end = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    text = text[:end].replace("\\", "/") + text[end:]
    site = urlsplit(origin)
    try:
        given = urlsplit(text)
    except ValueError:  # an unreadable authority such as "//[::1"
        return None
    if given.scheme and given.scheme != site.scheme:
        return None
    after_scheme = text[len(given.scheme) + 1 :] if given.scheme else text
    # An authority ("//host", "///host", "http://host"): browsers skip any number of slashes there.
    if after_scheme.startswith("//") and given.netloc.lower() != site.netloc.lower():
        return None
    resolved = urlsplit(urljoin(f"{site.scheme}://{site.netloc}/", text))
    if (resolved.scheme, resolved.netloc.lower()) != (site.scheme, site.netloc.lower()):
        return None
    if not resolved.path.startswith("/") or resolved.path.startswith("//"):
        return None
    return urlunsplit(("", "", resolved.path, resolved.query, resolved.fragment))


def content_security_policy(settings: Settings) -> str:
    twilio = settings.twilio
    browser_phone = bool(twilio.api_key_sid and twilio.twiml_app_sid)
    connect = "'self' " + TWILIO_ORIGINS if browser_phone else "'self'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; media-src 'self' https: blob:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )


def _page(file_name: str, policy: str) -> Handler:
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


def _login_page(serve: Handler) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        target = request.query.get("next")
        if target is not None and same_site_path(target, str(request.url.origin())) is None:
            raise web.HTTPFound("/login")
        return await serve(request)

    return login


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
        serve = _page(file_name, policy)
        app.router.add_get(route, _login_page(serve) if route == "/login" else serve)
    app.router.add_static(STATIC_PREFIX, WEB_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_no_cache_static)
