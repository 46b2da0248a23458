"""What happens on a campaign call once it is placed: the answer (bridged at once into a waiting
agent's room, or, when no agent is free within the 2-second grace, the abandonment message with
its opt-out digit), the answering-machine verdict (a machine is hung up on or left the campaign's
message after the beep, and the agent it reached is freed), and the call's end (its outcome
recorded by the retry rules; the agent wrapped up, then available again through routing).

Every event is keyed by the dial (its attempt id, in the webhook URLs) and is safe to repeat.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contact_center.campaigns.dialer_state import reservation_key, working_agents
from contact_center.routing.claim import reserve_for_outbound
from contact_center.routing.presence import PresenceStore
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.models import Campaign, CampaignAttempt, CampaignContact, ContactState, DialOutcome, DncSource
from crm_core.models.campaign import CampaignAgent, MachineAction
from crm_core.ports import Clock
from crm_core.services import do_not_call
from crm_core.services.campaign_attempts import record_attempt_outcome
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from crm_core.voice import CallStatus, CallStatusUpdate

log = logging.getLogger(__name__)

OPT_OUT_DIGIT = "9"
MACHINE_PREFIXES = ("machine", "fax")
_ENDED = {
    CallStatus.BUSY: DialOutcome.BUSY,
    CallStatus.NO_ANSWER: DialOutcome.NO_ANSWER,
    CallStatus.FAILED: DialOutcome.FAILED,
    CallStatus.CANCELED: DialOutcome.FAILED,
}


class AnswerKind(enum.StrEnum):
    BRIDGE = "bridge"
    """Into the agent's room (``room``)."""
    ABANDON = "abandon"
    """The abandonment message (``say``), then a digit to stop these calls."""
    MESSAGE = "message"
    """The campaign's message to a machine (``say``), then hang up."""
    HANG_UP = "hang-up"


@dataclass(frozen=True, slots=True)
class CallAnswer:
    kind: AnswerKind
    room: str = ""
    say: str = ""


def abandonment_message(campaign: Campaign) -> str:
    """Who called, a number to call back and how to stop these calls (FCC 64.1200(a)(7))."""
    digits = " ".join(campaign.caller_id.lstrip("+"))
    return (
        f"Hello, this is {campaign.name} calling. We are sorry we could not connect you to an agent. "
        f"To call us back, dial {digits}. To stop these calls, press {OPT_OUT_DIGIT} now."
    )


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and str(answered_by).startswith(MACHINE_PREFIXES)


class CampaignCallDesk:
    """Answers the webhooks of campaign calls."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        presence: PresenceStore,
        *,
        connect_grace: timedelta = timedelta(seconds=2),
        wrap_up_seconds: float = 30.0,
        reservation_seconds: float = 30.0,
        poll_seconds: float = 0.1,
    ) -> None:
        self._uow, self._clock, self._presence = uow, clock, presence
        self._grace, self._wrap_up, self._ttl = connect_grace, wrap_up_seconds, reservation_seconds
        self._poll = poll_seconds

    async def _adopt(self, attempt: CampaignAttempt, call_sid: str) -> None:
        if attempt.call_sid is None:
            attempt.call_sid = call_sid

    async def answered(self, attempt_id: int, call_sid: str) -> CallAnswer:
        """The callee picked up (the greeting starts): bridge to an agent within the grace or
        play the abandonment message. Machine detection still runs: until it says otherwise the
        answer is live (outbound-rules: AMD still running is a live answer)."""
        answered_at = self._clock.now()
        async with self._uow() as uow:
            attempt = await uow.session.get(CampaignAttempt, attempt_id, with_for_update=True)
            if attempt is None:
                return CallAnswer(AnswerKind.HANG_UP)
            await self._adopt(attempt, call_sid)
            if attempt.agent_id is not None:  # a repeated webhook: the same room again
                room = await self._room(uow.session, attempt.campaign_id, attempt.agent_id)
                await uow.commit()
                return CallAnswer(AnswerKind.BRIDGE, room=room) if room else CallAnswer(AnswerKind.HANG_UP)
            if attempt.outcome is not None:
                await uow.commit()
                return CallAnswer(AnswerKind.HANG_UP)
            attempt.answered_at = attempt.answered_at or answered_at
            campaign_id = attempt.campaign_id
            agents = await working_agents(uow.session, campaign_id)
            await uow.commit()
        key = reservation_key(campaign_id, attempt_id)
        agent_id = await self._reserve(agents, key, answered_at)
        async with self._uow() as uow:
            attempt = await uow.session.get(CampaignAttempt, attempt_id, with_for_update=True)
            campaign = await uow.session.get(Campaign, campaign_id)
            assert attempt is not None and campaign is not None
            room = await self._room(uow.session, campaign_id, agent_id) if agent_id is not None else None
            if agent_id is not None and room is not None and attempt.outcome is None:
                attempt.agent_id = agent_id
                await uow.commit()
                await self._presence.answer(agent_id, key)
                log.info("campaign call %s bridged to agent %s", call_sid, agent_id)
                return CallAnswer(AnswerKind.BRIDGE, room=room)
            if agent_id is not None:
                await self._presence.release(agent_id, key)
            if attempt.outcome is None:
                await record_attempt_outcome(
                    uow.session,
                    attempt_id,
                    DialOutcome.HUMAN,
                    self._clock.now(),
                    answered_at=attempt.answered_at,
                    abandoned=True,
                )
            await uow.commit()
            log.info("campaign call %s abandoned: no agent free within the grace", call_sid)
            return CallAnswer(AnswerKind.ABANDON, say=abandonment_message(campaign))

    async def _reserve(self, agents: list[int], key: str, answered_at: datetime) -> int | None:
        """An agent reserved for the call, trying until the grace is nearly over."""
        # Stop trying early enough that the message still starts inside the grace.
        # The waits are real time (the caller is on the line), also bounded in number so that a
        # clock that does not move on its own (a simulation's) cannot hold the answer.
        margin = min(timedelta(seconds=0.5), self._grace / 4)
        deadline = answered_at + self._grace - margin
        polls = int((self._grace - margin).total_seconds() / self._poll)
        for _ in range(polls):
            agent_id = await reserve_for_outbound(self._presence, agents, key, self._ttl)
            if agent_id is not None or self._clock.now() >= deadline:
                return agent_id
            await asyncio.sleep(self._poll)
        return await reserve_for_outbound(self._presence, agents, key, self._ttl)

    async def _room(self, session: AsyncSession, campaign_id: int, agent_id: int) -> str | None:
        room: str | None = await session.scalar(
            select(CampaignAgent.room).where(
                CampaignAgent.campaign_id == campaign_id, CampaignAgent.agent_id == agent_id
            )
        )
        return room

    async def machine_verdict(self, attempt_id: int, call_sid: str, answered_by: str) -> CallAnswer | None:
        """Machine detection's verdict. A human: noted. A machine: the agent it reached is freed
        and the call is to be redirected (the answer returned) to hang up or leave the message."""
        async with self._uow() as uow:
            attempt = await uow.session.get(CampaignAttempt, attempt_id, with_for_update=True)
            if attempt is None:
                return None
            await self._adopt(attempt, call_sid)
            attempt.answered_by = attempt.answered_by or answered_by
            if not is_machine(answered_by) or attempt.outcome is not None:
                await uow.commit()
                return None
            campaign = await uow.session.get(Campaign, attempt.campaign_id)
            assert campaign is not None
            agent_id, attempt.agent_id = attempt.agent_id, None
            await record_attempt_outcome(
                uow.session,
                attempt_id,
                DialOutcome.MACHINE,
                self._clock.now(),
                answered_at=attempt.answered_at,
                answered_by=answered_by,
            )
            await uow.commit()
        if agent_id is not None:  # the agent heard the greeting for a moment: free at once
            await self._presence.wrap_up(agent_id, reservation_key(campaign.id, attempt_id), 0.0)
        return await self.machine_answer(attempt_id)

    async def status(self, attempt_id: int, update: CallStatusUpdate) -> None:
        """The call's progress: its end records the outcome and wraps the agent up."""
        now = self._clock.now()
        async with self._uow() as uow:
            attempt = await uow.session.get(CampaignAttempt, attempt_id, with_for_update=True)
            if attempt is None:
                return
            await self._adopt(attempt, update.call_sid)
            if update.status is CallStatus.IN_PROGRESS and attempt.answered_at is None:
                attempt.answered_at = now
            agent_id, campaign_id = attempt.agent_id, attempt.campaign_id
            if update.status in _ENDED and attempt.outcome is None:
                await record_attempt_outcome(uow.session, attempt_id, _ENDED[update.status], now)
            elif update.status is CallStatus.COMPLETED:
                talk = update.duration_seconds or 0
                if agent_id is not None:
                    await self._log_conversation(uow, attempt, agent_id, talk, now)
                if attempt.outcome is None:
                    await record_attempt_outcome(
                        uow.session,
                        attempt_id,
                        DialOutcome.HUMAN if attempt.answered_at else DialOutcome.NO_ANSWER,
                        now,
                        answered_at=attempt.answered_at,
                        answered_by=attempt.answered_by,
                        talk_seconds=talk if agent_id is not None else 0,
                    )
                elif agent_id is not None:
                    attempt.talk_seconds = talk
            await uow.commit()
        if update.status is CallStatus.COMPLETED and agent_id is not None:
            await self._presence.wrap_up(agent_id, reservation_key(campaign_id, attempt_id), self._wrap_up)

    async def machine_answer(self, attempt_id: int) -> CallAnswer:
        """What a machine hears once the call is redirected: the campaign's message, or nothing."""
        async with self._uow() as uow:
            campaign = await uow.session.scalar(
                select(Campaign)
                .join(CampaignAttempt, CampaignAttempt.campaign_id == Campaign.id)
                .where(CampaignAttempt.id == attempt_id)
            )
        if (
            campaign is not None
            and campaign.machine_action is MachineAction.MESSAGE
            and campaign.machine_message
        ):
            return CallAnswer(AnswerKind.MESSAGE, say=campaign.machine_message)
        return CallAnswer(AnswerKind.HANG_UP)

    @staticmethod
    async def _log_conversation(
        uow: UnitOfWork, attempt: CampaignAttempt, agent_id: int, talk: int, now: datetime
    ) -> None:
        """The conversation goes in the customer's history like any call (once per call SID)."""
        contact = await uow.session.get(CampaignContact, attempt.contact_id)
        campaign = await uow.session.get(Campaign, attempt.campaign_id)
        assert contact is not None and campaign is not None
        await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.OUTBOUND,
            customer_id=contact.customer_id,
            external_id=attempt.call_sid,
            agent_id=agent_id,
            status=CallStatus.COMPLETED.value,
            started_at=attempt.answered_at or now,
            ended_at=now,
            duration_seconds=talk,
            subject=f"Campaign call: {campaign.name}",
            meta={"campaign_id": campaign.id, "attempt_id": attempt.id, "to": contact.e164},
            now=now,
        )

    async def opt_out(self, attempt_id: int, digits: str) -> bool:
        """The abandonment message's digit: the number goes on the company's do-not-call list."""
        if digits.strip() != OPT_OUT_DIGIT:
            return False
        async with self._uow() as uow:
            attempt = await uow.session.get(CampaignAttempt, attempt_id)
            if attempt is None:
                return False
            contact = await uow.session.get(CampaignContact, attempt.contact_id, with_for_update=True)
            assert contact is not None
            await do_not_call.add(uow, contact.e164, DncSource.OPT_OUT_DIGIT, self._clock.now())
            contact.state = ContactState.DNC
            await uow.commit()
        return True
