"""The console's side of a campaign: the agent joins (their browser is called into their own room)
or leaves it, and records the disposition of each call they took."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, StringConstraints

from contact_center.api.responses import json_out
from contact_center.api.schemas import Id, Input
from contact_center.api.spec import ApiRoutes, parse_body, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from contact_center.campaigns.agent_rooms import AgentRooms
from contact_center.campaigns.call_dispositions import dispose
from contact_center.late import Late
from crm_core.models import ContactState

routes = ApiRoutes("campaigns")
AGENT_ROOMS = web.AppKey("campaign_agent_rooms", Late[AgentRooms])


class AgentRoomOut(BaseModel):
    campaign_id: int
    agent_id: int
    room: str
    call_sid: str | None


class LeftOut(BaseModel):
    campaign_id: int
    working: bool


@routes.route(
    "POST",
    "/campaigns/{id}/join",
    summary="Start working the campaign: your browser is called into your own room",
    response=AgentRoomOut,
    errors=(404, 409),
)
async def join_campaign(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    room = await request.app[AGENT_ROOMS].get().join(viewer, path_int(request))
    return json_out(
        AgentRoomOut(
            campaign_id=room.campaign_id, agent_id=room.agent_id, room=room.room, call_sid=room.call_sid
        )
    )


@routes.route(
    "POST",
    "/campaigns/{id}/leave",
    summary="Stop working the campaign: no more of its calls come to you",
    response=LeftOut,
    errors=(404,),
)
async def leave_campaign(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    campaign_id = path_int(request)
    await request.app[AGENT_ROOMS].get().leave(viewer, campaign_id)
    return json_out(LeftOut(campaign_id=campaign_id, working=False))


class DispositionChoice(Input):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None
    callback_at: AwareDatetime | None = None
    """For a call-back disposition: when (in the future)."""
    callback_agent_id: Id | None = None
    """For a call-back disposition: the agent it is for (none: anyone working the campaign)."""


class DispositionResult(BaseModel):
    attempt_id: int
    number: str
    state: ContactState
    next_attempt_at: datetime
    callback_at: datetime | None


@routes.route(
    "POST",
    "/campaigns/{id}/attempts/{attempt_id}/disposition",
    summary="Record what became of a call you took (or, as supervisor, one of the campaign's)",
    body=DispositionChoice,
    response=DispositionResult,
    errors=(404,),
)
async def dispose_campaign_call(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    campaign_id, attempt_id = path_int(request), path_int(request, "attempt_id")
    body = await parse_body(request, DispositionChoice)
    runtime = request.app[RUNTIME]
    contact = await dispose(
        runtime.uow,
        runtime.clock,
        viewer,
        campaign_id,
        attempt_id,
        body.code,
        notes=body.notes,
        callback_at=body.callback_at,
        callback_agent_id=body.callback_agent_id,
    )
    return json_out(
        DispositionResult(
            attempt_id=attempt_id,
            number=contact.e164,
            state=contact.state,
            next_attempt_at=contact.next_attempt_at,
            callback_at=contact.callback_at,
        )
    )
