"""No answer names the server's software: aiohttp's default ``Server: Python/3.x aiohttp/3.x``
would tell a caller which versions' flaws to try.

Every response an application prepares (API answers and errors, pages, static files, WebSocket
upgrades, mounted sub-applications) goes without a ``Server`` header. The few answers aiohttp
writes before any application sees the request (a malformed request line or header) carry the
neutral :data:`NEUTRAL_SERVER` instead of the versions.
"""

from __future__ import annotations

from aiohttp import web, web_response

NEUTRAL_SERVER = "contact-center"


async def _drop_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)


def hide_server_software(app: web.Application) -> None:
    """Drop the ``Server`` header from ``app``'s responses, and the versions from aiohttp's own."""
    app.on_response_prepare.append(_drop_server_header)
    # aiohttp reads this default when it prepares a response that has no Server header.
    web_response.SERVER_SOFTWARE = NEUTRAL_SERVER  # type: ignore[attr-defined]
