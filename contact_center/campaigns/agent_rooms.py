"""Agents working a campaign sit in a conference room of their own, joined once: the service calls
the agent's browser into it when they join, so an answered customer is bridged into the room at
once (ringing a browser after the customer answered would break the 2-second rule). While they
work the campaign they stay reservable through routing like any agent; leaving ends the room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden, GatewayError, InvalidTransition, NotFound
from crm_core.models import Campaign, CampaignStatus
from crm_core.models.campaign import CampaignAgent
from crm_core.ports import Clock
from crm_core.services import campaigns
from crm_core.visibility import Viewer
from crm_core.voice import CallRecord, CallStatus, agent_identity

log = logging.getLogger(__name__)
SLACK = timedelta(seconds=2)
"""Twilio's creation times are to the second."""
_LIVE = frozenset({CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS})


class RoomCalls(Protocol):
    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str: ...

    async def find_calls(self, *, to: str, from_: str, created_after: datetime) -> list[CallRecord]: ...

    async def redirect_call(self, call_sid: str, url: str) -> None: ...


class RoomUrls(Protocol):
    def room(self, campaign_id: int, agent_id: int) -> str: ...
    def room_status(self, campaign_id: int, agent_id: int) -> str: ...


def room_name(campaign_id: int, agent_id: int) -> str:
    return f"campaign-{campaign_id}-agent-{agent_id}"


@dataclass(frozen=True, slots=True)
class AgentRoom:
    campaign_id: int
    agent_id: int
    room: str
    call_sid: str | None


class AgentRooms:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, calls: RoomCalls, urls: RoomUrls) -> None:
        self._uow, self._clock, self._calls, self._urls = uow, clock, calls, urls

    async def join(self, viewer: Viewer, campaign_id: int) -> AgentRoom:
        """The agent starts working the campaign: recorded (one campaign at a time), and their
        browser is called into their room."""
        agent_id = viewer.agent_id
        async with self._uow() as uow:
            campaign = await campaigns.get_visible(uow.session, viewer, campaign_id)
            if campaign.status is CampaignStatus.STOPPED:
                raise InvalidTransition("the campaign is stopped")
            agents, teams = await campaigns.members(uow.session, campaign_id)
            if agent_id not in agents and viewer.team_id not in teams:
                raise Forbidden("you do not work this campaign")
            working = await uow.session.get(CampaignAgent, (campaign_id, agent_id))
            if working is not None:  # already in their room: joining again changes nothing
                return AgentRoom(campaign_id, agent_id, working.room, None)
            await uow.session.execute(delete(CampaignAgent).where(CampaignAgent.agent_id == agent_id))
            room = room_name(campaign_id, agent_id)
            uow.session.add(
                CampaignAgent(
                    campaign_id=campaign_id, agent_id=agent_id, room=room, joined_at=self._clock.now()
                )
            )
            caller_id = campaign.caller_id
            await uow.commit()
        sid = await self._calls.place_call(
            to=f"client:{agent_identity(agent_id)}",
            from_=caller_id,
            url=self._urls.room(campaign_id, agent_id),
            status_callback=self._urls.room_status(campaign_id, agent_id),
        )
        return AgentRoom(campaign_id, agent_id, room, sid)

    async def leave(self, viewer: Viewer, campaign_id: int) -> None:
        """The agent stops working the campaign: no more calls are bridged to them, and their
        browser's leg of the room is sent to the room's URL again, which now hangs it up."""
        agent_id = viewer.agent_id
        async with self._uow() as uow:
            working = await uow.session.get(CampaignAgent, (campaign_id, agent_id))
            if working is None:
                raise NotFound("you are not working this campaign")
            campaign = await uow.session.get(Campaign, campaign_id)
            assert campaign is not None
            joined_at, caller_id = working.joined_at, campaign.caller_id
            await uow.session.delete(working)
            await uow.commit()
        try:
            legs = await self._calls.find_calls(
                to=f"client:{agent_identity(agent_id)}", from_=caller_id, created_after=joined_at - SLACK
            )
            for leg in legs:
                if leg.status in _LIVE:
                    await self._calls.redirect_call(leg.call_sid, self._urls.room(campaign_id, agent_id))
        except GatewayError as exc:  # the leg ended meanwhile, or Twilio is out of reach
            log.warning("agent %s left campaign %s; their room leg stays: %s", agent_id, campaign_id, exc)

    async def left_room(self, campaign_id: int, agent_id: int) -> None:
        """The agent's leg of the room ended (hung up, browser closed): they no longer work it."""
        async with self._uow() as uow:
            await uow.session.execute(
                delete(CampaignAgent).where(
                    CampaignAgent.campaign_id == campaign_id, CampaignAgent.agent_id == agent_id
                )
            )
            await uow.commit()

    async def room_of(self, campaign_id: int, agent_id: int) -> str | None:
        async with self._uow() as uow:
            room: str | None = await uow.session.scalar(
                select(CampaignAgent.room).where(
                    CampaignAgent.campaign_id == campaign_id, CampaignAgent.agent_id == agent_id
                )
            )
        return room
