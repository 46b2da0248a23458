"""Who may drive the simulated phone network (``/sandbox/...``).

Driving it reads every text and call the service made and fakes any phone (an inbound STOP for
any number), so nothing there is open. A request is let in with the sandbox's control token
(``Authorization: Bearer <token>`` or ``X-Sandbox-Token``), or by the application the sandbox is
mounted on (its own sign-in: :data:`Authorize`). The application may grant everything (an admin)
or one simulated agent browser only (an agent answering and hanging up their own calls).
The REST half (``/2010-04-01/...``) keeps Twilio's own Basic auth (:func:`rest.check_account`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

CONTROL_TOKEN_HEADER = "X-Sandbox-Token"  # noqa: S105 - a header name


@dataclass(frozen=True, slots=True)
class ControlGrant:
    """What a caller of ``/sandbox/...`` may do: everything, or only what one agent browser
    (``client:<client_identity>``) does with its own calls."""

    client_identity: str | None = None

    @property
    def everything(self) -> bool:
        return self.client_identity is None


EVERYTHING = ControlGrant()

Authorize = Callable[[web.Request], Awaitable[ControlGrant | None]]
"""The mounting application's sign-in: a grant, or None for a caller it does not know."""


def presented_token(request: web.Request) -> str:
    """The control token the request carries (``X-Sandbox-Token`` or a bearer token), or ""."""
    header = request.headers.get(CONTROL_TOKEN_HEADER, "").strip()
    if header:
        return header
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def has_control_token(request: web.Request, token: str) -> bool:
    presented = presented_token(request)
    return bool(token and presented) and hmac.compare_digest(presented.encode(), token.encode())
