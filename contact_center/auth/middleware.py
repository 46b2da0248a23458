"""Who is calling: a session cookie (browser) or a bearer token (integration).

Cookie-authenticated requests that change state must carry the session's CSRF token in the
X-CSRF-Token header; the cookie itself is HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from contact_center.api.errors import ApiError, Handler
from contact_center.appkeys import IDENTITY, RUNTIME
from contact_center.auth.credentials import identity_from_session, identity_from_token
from crm_core.models import Role
from crm_core.visibility import Viewer

SESSION_COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Signing in again from a browser that still holds a session must work; a cross-site JSON
# POST cannot reach it without a CORS preflight this service never grants.
CSRF_EXEMPT_PATHS = frozenset({"/api/v1/auth/login"})


# Twilio's webhooks (signed) and the sandbox's REST API (Basic auth) carry their own credentials;
# chat visitors carry a signed visitor token, and the widget's files are public; /metrics checks
# its own token (metrics.token) and networks.
OWN_AUTH_PREFIXES = ("/twilio/", "/twilio-sandbox/", "/ws/chat", "/chat/", "/metrics")
# Public pages (the help centre) show everyone the same thing: credentials sent along, even
# unknown or malformed ones, are ignored rather than refused.
PUBLIC_PAGES = ("/help",)


def is_public_page(path: str) -> bool:
    return any(path == page or path.startswith(page + "/") for page in PUBLIC_PAGES)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(OWN_AUTH_PREFIXES) or is_public_page(request.path):
        return await handler(request)
    runtime = request.app[RUNTIME]
    auth = request.headers.get("Authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "unauthorized", "use 'Authorization: Bearer <token>'")
        async with runtime.uow() as uow:
            identity = await identity_from_token(uow.session, secret.strip(), now=runtime.clock.now())
            await uow.commit()
        if identity is None:
            raise ApiError(401, "unauthorized", "the API token is unknown or revoked")
        request[IDENTITY] = identity
    elif cookie:
        async with runtime.uow() as uow:
            identity = await identity_from_session(uow.session, cookie, now=runtime.clock.now())
        if identity is not None:
            if request.method not in SAFE_METHODS and request.path not in CSRF_EXEMPT_PATHS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not identity.csrf_token or not hmac.compare_digest(sent, identity.csrf_token):
                    raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
            request[IDENTITY] = identity
    return await handler(request)


def viewer_of(request: web.Request) -> Viewer:
    identity = request.get(IDENTITY)
    if identity is None:
        raise ApiError(401, "unauthorized", "sign in or send an API token")
    return Viewer.of(identity.agent)


def require_role(viewer: Viewer, *roles: Role) -> None:
    if viewer.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise ApiError(403, "forbidden", f"this needs the {wanted} role")
