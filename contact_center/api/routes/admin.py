"""Agents, teams and API tokens (administrators; supervisors may list)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import (
    AgentCreate,
    AgentList,
    AgentOut,
    AgentUpdate,
    TeamCreate,
    TeamList,
    TeamOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
)
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.credentials import access_changed, create_api_token, end_sessions, revoke_api_token
from contact_center.auth.middleware import require_role, viewer_of
from crm_core.contact_points import normalize_email, normalize_phone
from crm_core.models import Agent, ApiToken, Role, Team
from crm_core.services import agents as svc

routes = ApiRoutes("admin")


@routes.route("GET", "/agents", summary="List agents (supervisors see their team)", response=AgentList)
async def list_agents(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    stmt = select(Agent).order_by(Agent.id)
    if not viewer.is_admin:
        stmt = (
            stmt.where(Agent.team_id == viewer.team_id)
            if viewer.team_id
            else stmt.where(Agent.id == viewer.agent_id)
        )
    async with request.app[RUNTIME].uow() as uow:
        rows = list(await uow.session.scalars(stmt))
    return json_out(AgentList(items=[AgentOut.model_validate(a) for a in rows]))


@routes.route(
    "POST",
    "/agents",
    summary="Create an agent (409 when the login is taken)",
    body=AgentCreate,
    response=AgentOut,
    status=201,
    errors=(409,),
)
async def create_agent(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    body = await parse_body(request, AgentCreate)
    runtime = request.app[RUNTIME]
    data = body.model_dump()
    if data["email"]:
        data["email"] = normalize_email(data["email"])
    if data["phone"]:
        data["phone"] = normalize_phone(data["phone"], runtime.region)
    async with runtime.uow() as uow:
        agent = await svc.create_agent(uow.session, runtime.hasher, **data)
        await uow.commit()
    return json_out(AgentOut.model_validate(agent), 201)


@routes.route("GET", "/agents/{id}", summary="Read an agent", response=AgentOut)
async def get_agent(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    agent_id = path_int(request)
    async with request.app[RUNTIME].uow() as uow:
        agent = await uow.session.get(Agent, agent_id)
    visible = agent is not None and (
        viewer.is_admin
        or agent.id == viewer.agent_id
        or (viewer.role is Role.SUPERVISOR and agent.team_id is not None and agent.team_id == viewer.team_id)
    )
    if agent is None or not visible:
        raise ApiError(404, "not_found", f"agent {agent_id} not found")
    return json_out(AgentOut.model_validate(agent))


@routes.route(
    "PATCH",
    "/agents/{id}",
    summary="Update an agent (role, team, skills, password, active)",
    body=AgentUpdate,
    response=AgentOut,
)
async def update_agent(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    body = await parse_body(request, AgentUpdate)
    runtime = request.app[RUNTIME]
    changes = body.model_dump(exclude_unset=True)
    if changes.get("email"):
        changes["email"] = normalize_email(changes["email"])
    if changes.get("phone"):
        changes["phone"] = normalize_phone(changes["phone"], runtime.region)
    agent_id = path_int(request)
    password_changed = "password" in changes
    async with runtime.uow() as uow:
        before = await uow.session.get(Agent, agent_id)
        was = (before.active, before.role, before.team_id) if before is not None else None
        agent = await svc.update_agent(uow.session, runtime.hasher, agent_id, changes)
        reason = _access_change(was, agent, password_changed=password_changed)
        if reason is not None:
            if reason != "rights_changed":
                await end_sessions(uow.session, agent.id)
            # Deactivation closes token sockets too; new rights take effect on a new socket.
            tokens = reason in ("deactivated", "rights_changed")
            uow.record(access_changed(agent.id, reason, tokens=tokens))
        await uow.commit()
    return json_out(AgentOut.model_validate(agent))


def _access_change(
    was: tuple[bool, Role, int | None] | None, agent: Agent, *, password_changed: bool
) -> str | None:
    """Why the agent's sessions end or their sockets must reconnect, if they must."""
    if was is None:
        return None
    active, role, team_id = was
    if active != agent.active:
        return "reactivated" if agent.active else "deactivated"
    if password_changed:
        return "password_changed"
    if (role, team_id) != (agent.role, agent.team_id):
        return "rights_changed"
    return None


@routes.route(
    "POST",
    "/agents/{id}/sign-out",
    summary="Sign an agent out everywhere: end their browser sessions and close their live sockets",
    status=204,
)
async def sign_agent_out(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN)
    agent_id = path_int(request)
    async with request.app[RUNTIME].uow() as uow:
        if await uow.session.get(Agent, agent_id) is None:
            raise ApiError(404, "not_found", f"agent {agent_id} not found")
        await end_sessions(uow.session, agent_id)
        uow.record(access_changed(agent_id, "signed_out_by_admin"))
        await uow.commit()
    return web.Response(status=204)


@routes.route("GET", "/teams", summary="List teams", response=TeamList)
async def list_teams(request: web.Request) -> web.Response:
    viewer_of(request)
    async with request.app[RUNTIME].uow() as uow:
        rows = list(await uow.session.scalars(select(Team).order_by(Team.name)))
    return json_out(TeamList(items=[TeamOut.model_validate(t) for t in rows]))


@routes.route(
    "POST", "/teams", summary="Create a team", body=TeamCreate, response=TeamOut, status=201, errors=(409,)
)
async def create_team(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    body = await parse_body(request, TeamCreate)
    async with request.app[RUNTIME].uow() as uow:
        team = await svc.create_team(uow.session, body.name)
        await uow.commit()
    return json_out(TeamOut.model_validate(team), 201)


@routes.route("GET", "/tokens", summary="List API tokens", response=TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    async with request.app[RUNTIME].uow() as uow:
        rows = list(await uow.session.scalars(select(ApiToken).order_by(ApiToken.id)))
    return json_out(TokenList(items=[TokenOut.model_validate(t) for t in rows]))


@routes.route(
    "POST",
    "/tokens",
    summary="Create an API token (shown once)",
    body=TokenCreate,
    response=TokenCreated,
    status=201,
)
async def create_token(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN)
    body = await parse_body(request, TokenCreate)
    async with request.app[RUNTIME].uow() as uow:
        if await uow.session.get(Agent, body.agent_id) is None:
            raise ApiError(422, "invalid_input", "unknown agent", {"agent_id": "no such agent"})
        token, secret = await create_api_token(
            uow.session, name=body.name, agent_id=body.agent_id, created_by_id=viewer.agent_id
        )
        await uow.commit()
    out = TokenCreated(**TokenOut.model_validate(token).model_dump(), token=secret)
    return json_out(out, 201)


@routes.route("DELETE", "/tokens/{id}", summary="Revoke an API token", response=TokenOut)
async def revoke_token(request: web.Request) -> web.Response:
    require_role(viewer_of(request), Role.ADMIN)
    token_id = path_int(request)
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        token = await revoke_api_token(uow.session, token_id, now=runtime.clock.now())
        if token is None:
            raise ApiError(404, "not_found", f"token {token_id} not found")
        await uow.commit()
    return json_out(TokenOut.model_validate(token))
