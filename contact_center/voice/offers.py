"""What every part of the call desk shares: an agent claimed for a call, the call offered to them
(their phone rings with the caller's card) or queued, and the decision remembered on the call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from contact_center.routing.claim import claim_agent
from contact_center.routing.presence import AgentState, Presence, PresenceStore, presence_changed
from contact_center.routing.roster import RosterCache
from contact_center.voice.events import call_event, screen_pop
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.models import Agent, Customer, Interaction
from crm_core.ports import Clock
from crm_core.services.customer_card import card_by_customer
from crm_core.services.withheld_callers import is_withheld_callers
from crm_core.sql import Executor
from crm_core.types import Channel
from crm_core.voice import QUEUED_FOR_AGENT, CallDecision, DecisionKind, agent_identity

if TYPE_CHECKING:
    from contact_center.voice.desk import CallPolicy

OFFERING = "offering"


def routing_owner(customer: Customer) -> int | None:
    """Whose customer the caller is, for sticky routing: nobody's for the shared record of
    withheld callers (should it be given an owner, they would get every withheld call)."""
    return None if is_withheld_callers(customer) else customer.owner_id


async def locked_call(uow: UnitOfWork, call_sid: str) -> Interaction | None:
    """The call's interaction, locked for this unit of work."""
    found: Interaction | None = await uow.session.scalar(
        select(Interaction)
        .where(Interaction.channel == Channel.VOICE, Interaction.external_id == call_sid)
        .with_for_update()
    )
    return found


class CallOffers:
    """Claims agents for calls, offers calls to them or queues them, and says how to ring an agent."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        roster: RosterCache,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._presence = presence
        self._policy = policy
        self._roster = roster

    async def route(self, *, owner_id: int | None, call_sid: str) -> int | None:
        roster = await self._roster.get()
        agent_id = await claim_agent(self._presence, roster, owner_id=owner_id, skill=None, call_sid=call_sid)
        if agent_id is not None:
            # The claim just made the agent RINGING for this call: no need to read it back.
            await self.announce(Presence(agent_id, AgentState.RINGING, self._clock.now(), call_sid=call_sid))
        return agent_id

    async def set_presence(self, agent_id: int, state: AgentState, **kwargs: Any) -> None:
        await self.announce(await self._presence.set(agent_id, state, **kwargs))

    async def release(self, agent_id: int, call_sid: str) -> bool:
        released = await self._presence.release(agent_id, call_sid)
        if released:
            await self.announce(await self._presence.get(agent_id))
        return released

    async def announce(self, presence: Presence) -> None:
        await self._uow.publisher.publish([presence_changed(presence)])

    async def offer_or_queue(
        self, uow: UnitOfWork, interaction: Interaction, customer_id: int, agent_id: int | None
    ) -> CallDecision:
        if agent_id is None:
            interaction.status = QUEUED_FOR_AGENT
            decision = CallDecision(DecisionKind.ENQUEUE, say=[])
            self.remember(interaction, decision)
            interaction.queued_at = self._clock.now()
            uow.record(call_event(interaction, "queued"))
            return decision
        interaction.agent_id = agent_id
        decision = await self.connect(uow.session, agent_id, say=[self._policy.greeting])
        self.remember(interaction, decision)
        await uow.session.flush()
        card = await card_by_customer(uow.session, customer_id)
        call_sid = str(interaction.external_id)
        uow.record(screen_pop(agent_id, call_sid, interaction.id, interaction.meta.get("from"), card))
        return decision

    @staticmethod
    def remember(interaction: Interaction, decision: CallDecision) -> None:
        """The decision, so that a retried webhook is answered alike (:meth:`decision_from`)."""
        interaction.call_decision = decision.kind.value
        interaction.routed_agent_id = decision.agent_id

    async def connect(self, db: Executor, agent_id: int, say: list[str]) -> CallDecision:
        phone = await db.scalar(select(Agent.phone).where(Agent.id == agent_id))
        return self.connect_decision(agent_id, phone, say)

    def connect_decision(self, agent_id: int, phone: str | None, say: list[str]) -> CallDecision:
        """Ring the agent: their own phone when they set one, else their browser."""
        return CallDecision(
            DecisionKind.CONNECT_AGENT,
            agent_id=agent_id,
            agent_identity=None if phone else agent_identity(agent_id),
            agent_number=phone,
            say=say,
            ring_seconds=self._policy.ring_seconds,
        )

    async def decision_from(self, db: Executor, decision: str | None, agent_id: int | None) -> CallDecision:
        """The decision remembered on a call already logged (a retried webhook answers alike)."""
        kind = DecisionKind(decision or DecisionKind.ENQUEUE.value)
        if kind is DecisionKind.CONNECT_AGENT and agent_id is not None:
            return await self.connect(db, agent_id, say=[self._policy.greeting])
        if kind is DecisionKind.VOICEMAIL:
            return CallDecision(kind, say=[self._policy.closed_message])
        if kind is DecisionKind.HANG_UP:
            return CallDecision(kind)
        return CallDecision(DecisionKind.ENQUEUE)
