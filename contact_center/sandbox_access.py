"""Who may drive the Twilio sandbox mounted on the service (``/twilio-sandbox/sandbox/...``).

The service's own sign-in, as for its API: a session cookie (with the CSRF header on changes) or
an API token. An admin may do everything; any other agent only what their own simulated browser
does (see the calls ringing it, answer, reject, hang up their leg). The sandbox's control token
is checked by the sandbox itself; anybody else is refused.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from contact_center.appkeys import RUNTIME
from contact_center.auth.credentials import Identity, identity_from_session, identity_from_token
from contact_center.auth.middleware import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from contact_center.sandbox.access import EVERYTHING, Authorize, ControlGrant
from crm_core.models import Role
from crm_core.voice import agent_identity


def sandbox_authorizer(app: web.Application) -> Authorize:
    """The grant of a request to the sandbox mounted on ``app``, by the service's sign-in."""

    async def authorize(request: web.Request) -> ControlGrant | None:
        identity = await _identity(app, request)
        if identity is None:
            return None
        if identity.agent.role is Role.ADMIN:
            return EVERYTHING
        return ControlGrant(client_identity=agent_identity(identity.agent.id))

    return authorize


async def _identity(app: web.Application, request: web.Request) -> Identity | None:
    runtime = app[RUNTIME]
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        async with runtime.uow() as uow:
            identity = await identity_from_token(uow.session, secret.strip(), now=runtime.clock.now())
            await uow.commit()
        return identity
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    async with runtime.uow() as uow:
        identity = await identity_from_session(uow.session, cookie, now=runtime.clock.now())
    if identity is None:
        return None
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not identity.csrf_token or not hmac.compare_digest(sent, identity.csrf_token):
            return None
    return identity
