"""Agents working a campaign sit in a conference room of their own, joined once: the service calls
the agent's browser into it when they join, so an answered customer is bridged into the room at
once (ringing a browser after the customer answered would break the 2-second rule). While they
work the campaign they stay reservable through routing like any agent; leaving ends the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select

from contact_center.voice.offers import agent_identity
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden, InvalidTransition, NotFound
from crm_core.models import CampaignStatus
from crm_core.models.campaign import CampaignAgent
from crm_core.ports import Clock
from crm_core.services import campaigns
from crm_core.visibility import Viewer


class RoomCalls(Protocol):
    async def place_call(
        self, *, to: str, from_: str, url: str, status_callback: str, machine_detection: bool = False
    ) -> str: ...


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
        """The agent stops working the campaign: no more calls are bridged to them."""
        async with self._uow() as uow:
            gone = await uow.session.execute(
                delete(CampaignAgent).where(
                    CampaignAgent.campaign_id == campaign_id, CampaignAgent.agent_id == viewer.agent_id
                )
            )
            await uow.commit()
        if not getattr(gone, "rowcount", 0):
            raise NotFound("you are not working this campaign")

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
