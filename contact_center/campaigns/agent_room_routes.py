"""The console's join and leave of a campaign: the agent starts (their browser is called into
their own room) or stops working it."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from contact_center.api.responses import json_out
from contact_center.api.spec import ApiRoutes, path_int
from contact_center.auth.middleware import viewer_of
from contact_center.campaigns.agent_rooms import AgentRooms
from contact_center.late import Late

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
