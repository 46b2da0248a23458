"""Presence: agents set their own; supervisors (their team) and admins (everyone) see and change it.

Agents may only choose available, away or offline: ringing, on-call and wrap-up belong to calls.
Choosing available ends a wrap-up early, and also unsticks a state a lost call left behind.
Every change is announced as ``presence.changed`` on the bus, for wallboards on every instance.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from contact_center.api.errors import ApiError
from contact_center.api.responses import json_out
from contact_center.api.schemas import AgentPresenceOut, PresenceIn, PresenceList, PresenceOut
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.appkeys import RUNTIME, Runtime
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.routing.presence import EPOCH, AgentState, Presence, presence_changed
from crm_core.models import Agent, Role
from crm_core.visibility import Viewer

routes = ApiRoutes("presence")


def _presence_out(presence: Presence, now: datetime) -> PresenceOut:
    return PresenceOut(
        agent_id=presence.agent_id,
        state=presence.state,
        since=presence.since,
        until=presence.until,
        call_sid=presence.call_sid,
        seconds_in_state=None if presence.since == EPOCH else int(presence.seconds_in_state(now)),
    )


def _agent_presence_out(agent: Agent, presence: Presence, now: datetime) -> AgentPresenceOut:
    return AgentPresenceOut(
        **_presence_out(presence, now).model_dump(),
        login=agent.login,
        display_name=agent.display_name,
        team_id=agent.team_id,
    )


async def _change(runtime: Runtime, agent_id: int, state: AgentState) -> Presence:
    presence = await runtime.presence.set(agent_id, state)
    await runtime.bus.publish([presence_changed(presence)])
    return presence


def _manages(viewer: Viewer, agent: Agent) -> bool:
    return (
        viewer.is_admin
        or agent.id == viewer.agent_id
        or (viewer.role is Role.SUPERVISOR and agent.team_id is not None and agent.team_id == viewer.team_id)
    )


@routes.route("GET", "/presence/me", summary="Read my presence", response=PresenceOut)
async def get_my_presence(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    runtime = request.app[RUNTIME]
    presence = await runtime.presence.get(viewer.agent_id)
    return json_out(_presence_out(presence, runtime.clock.now()))


@routes.route(
    "PUT",
    "/presence/me",
    summary="Set my presence: available, away or offline",
    body=PresenceIn,
    response=PresenceOut,
)
async def set_my_presence(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    body = await parse_body(request, PresenceIn)
    runtime = request.app[RUNTIME]
    presence = await _change(runtime, viewer.agent_id, AgentState(body.state))
    return json_out(_presence_out(presence, runtime.clock.now()))


@routes.route(
    "GET", "/presence", summary="List agents' presence (supervisors see their team)", response=PresenceList
)
async def list_presence(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    runtime = request.app[RUNTIME]
    stmt = select(Agent).where(Agent.active.is_(True)).order_by(Agent.id)
    if not viewer.is_admin:
        stmt = (
            stmt.where(Agent.team_id == viewer.team_id)
            if viewer.team_id
            else stmt.where(Agent.id == viewer.agent_id)
        )
    async with runtime.uow() as uow:
        agents = list(await uow.session.scalars(stmt))
    states = await runtime.presence.get_many([a.id for a in agents])
    now = runtime.clock.now()
    return json_out(PresenceList(items=[_agent_presence_out(a, states[a.id], now) for a in agents]))


@routes.route(
    "PUT",
    "/presence/{agent_id}",
    summary="Set an agent's presence (their team's supervisor, or an admin)",
    body=PresenceIn,
    response=AgentPresenceOut,
)
async def set_agent_presence(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    agent_id = path_int(request, "agent_id")
    runtime = request.app[RUNTIME]
    async with runtime.uow() as uow:
        agent = await uow.session.get(Agent, agent_id)
    if agent is None or not _manages(viewer, agent):
        raise ApiError(404, "not_found", f"agent {agent_id} not found")
    body = await parse_body(request, PresenceIn)
    presence = await _change(runtime, agent.id, AgentState(body.state))
    return json_out(_agent_presence_out(agent, presence, runtime.clock.now()))
