"""Sign in and out; who am I."""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from contact_center.api.errors import ApiError
from contact_center.api.schemas import AgentOut, LoginIn, SessionOut
from contact_center.api.spec import ApiRoutes, parse_body
from contact_center.appkeys import IDENTITY, RUNTIME
from contact_center.auth.credentials import access_changed, close_session, end_sessions, open_session
from contact_center.auth.middleware import SESSION_COOKIE, viewer_of
from crm_core.services.agents import agent_by_login

log = logging.getLogger(__name__)
routes = ApiRoutes("auth")

LOGIN_WINDOW_SECONDS = 60
# Failed sign-ins allowed from one address, as a multiple of the per-login limit.
IP_LIMIT_FACTOR = 5


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


@routes.route(
    "POST",
    "/auth/login",
    summary="Sign in with login and password",
    body=LoginIn,
    response=SessionOut,
    public=True,
    errors=(401, 429),
)
async def login(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await parse_body(request, LoginIn)
    limiter, limit = runtime.limiter, runtime.settings.security.login_attempts_per_minute
    login_name = body.login.lower()
    # Only failures count, so a whole office signing in from one address at shift start is fine.
    keys = {f"login:{login_name}": limit, f"login-ip:{client_address(request)}": limit * IP_LIMIT_FACTOR}
    for key, key_limit in keys.items():
        if await limiter.attempts(key, LOGIN_WINDOW_SECONDS) >= key_limit:
            log.warning("login rate limit reached for %r from %s", login_name, client_address(request))
            raise ApiError(429, "too_many_requests", "too many failed sign-in attempts; wait a minute")
    async with runtime.uow() as uow:
        agent = await agent_by_login(uow.session, login_name)
        ok = runtime.hasher.verify(agent.password_hash if agent else None, body.password)
        if agent is None or not ok or not agent.active:
            for key, key_limit in keys.items():
                await limiter.hit(key, key_limit, LOGIN_WINDOW_SECONDS)
            log.info("failed sign-in for %r from %s", login_name, client_address(request))
            raise ApiError(401, "invalid_credentials", "wrong login or password")
        ttl = timedelta(hours=runtime.settings.security.session_ttl_hours)
        secret, csrf = await open_session(uow.session, agent, ttl, now=runtime.clock.now())
        await uow.commit()
    await limiter.reset(f"login:{login_name}")
    response = web.json_response(
        SessionOut(agent=AgentOut.model_validate(agent), csrf_token=csrf).model_dump(mode="json")
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=runtime.settings.security.cookie_secure,
        path="/",
    )
    return response


@routes.route("POST", "/auth/logout", summary="Sign out of this browser session", status=204)
async def logout(request: web.Request) -> web.Response:
    viewer_of(request)
    identity = request[IDENTITY]
    if identity.session_id is not None:
        async with request.app[RUNTIME].uow() as uow:
            await close_session(uow.session, identity.session_id)
            uow.record(access_changed(identity.agent.id, "signed_out", session_id=identity.session_id))
            await uow.commit()
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.route(
    "POST",
    "/auth/logout-all",
    summary="Sign out everywhere: end all your browser sessions and close your live sockets",
    status=204,
)
async def logout_everywhere(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        await end_sessions(uow.session, viewer.agent_id)
        uow.record(access_changed(viewer.agent_id, "signed_out_everywhere"))
        await uow.commit()
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.route("GET", "/auth/me", summary="The signed-in agent", response=SessionOut)
async def me(request: web.Request) -> web.Response:
    viewer_of(request)
    identity = request[IDENTITY]
    out = SessionOut(agent=AgentOut.model_validate(identity.agent), csrf_token=identity.csrf_token)
    return web.json_response(out.model_dump(mode="json"))
