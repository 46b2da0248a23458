"""A call in progress: its status callbacks, the agent's leg answered or ended, the Dial's
outcome, and the agent's wrap-up. A call that ends without reaching an agent opens a callback
ticket (or joins the open one)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from contact_center.routing.presence import AgentState, PresenceStore, WrappedUp, presence_changed
from contact_center.voice.events import call_event, call_updated
from contact_center.voice.inbound import Callers
from contact_center.voice.offers import CallOffers, locked_call
from contact_center.voice.queue import NobodyFree
from contact_center.voice.tickets import CallTickets
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import Interaction
from crm_core.ports import Clock
from crm_core.rules.call_status import TERMINAL, should_apply
from crm_core.services.inbound_calls import mark_answered
from crm_core.sql import AutocommitConnections
from crm_core.voice import (
    CallDecision,
    CallStatus,
    CallStatusUpdate,
    DecisionKind,
    DialOutcome,
    InboundCall,
)

if TYPE_CHECKING:
    from contact_center.voice.desk import CallPolicy

log = logging.getLogger(__name__)

ANSWERED_DIAL = frozenset({"completed", "answered"})


class CallProgress:
    """Answers the callbacks of a call under way (status, agent leg, Dial action)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        connections: AutocommitConnections,
        offers: CallOffers,
        callers: Callers,
        tickets: CallTickets,
        nobody_free: NobodyFree,
        free_at: Callable[[datetime], None],
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._presence = presence
        self._policy = policy
        self._connections = connections
        self._offers = offers
        self._callers = callers
        self._tickets = tickets
        self._nobody_free = nobody_free
        # A wrap-up ends without a word: routing is told when, so that the agent is offered to the
        # waiting callers the moment it does (the queue timer still covers an instance that stops).
        self._free_at = free_at

    async def call_status(self, update: CallStatusUpdate) -> None:
        release: tuple[int, str] | None = None
        wrap_up: tuple[int, str] | None = None
        async with self._uow() as uow:
            interaction = await locked_call(uow, update.call_sid) or await self._log_unrouted(uow, update)
            if interaction is None:
                log.info("status %s for unknown call %s ignored", update.status, update.call_sid)
                return
            if not should_apply(
                interaction.status, interaction.status_sequence, update.status, update.sequence_number
            ):
                return
            interaction.status = update.status.value
            interaction.status_sequence = update.sequence_number
            if update.status in TERMINAL:
                interaction.ended_at = update.timestamp or self._clock.now()
                interaction.duration_seconds = update.duration_seconds
                if update.recording_url:
                    interaction.meta = {**interaction.meta, "recording_url": update.recording_url}
                answered = interaction.answered_at is not None
                routed = interaction.routed_agent_id
                if routed is not None and not answered:
                    release = (routed, update.call_sid)
                answered_by = interaction.answered_by_id
                if answered_by is not None:
                    # Should the agent leg's end and the dial action be lost or late, the call's
                    # own end still frees whoever took it (a no-op once they have moved on).
                    wrap_up = (answered_by, update.call_sid)
                if not answered and not interaction.meta.get("recording_url"):
                    interaction.missed = True
                    await self._tickets.callback_ticket(uow, interaction)
            uow.record(call_event(interaction, update.status.value))
            await uow.commit()
        if release is not None:
            await self._offers.release(*release)
        if wrap_up is not None:
            await self._wrap_up(*wrap_up, announce=True)

    async def _log_unrouted(self, uow: UnitOfWork, update: CallStatusUpdate) -> Interaction | None:
        """An inbound call that ended before it was ever logged (its webhook failed or never came
        through, and the caller gave up): log it now, so that it counts as missed and the caller
        is called back. None for any other unknown call."""
        if update.status not in TERMINAL or update.direction != "inbound" or update.from_number is None:
            return None
        call = InboundCall(update.call_sid, update.from_number, update.to_number or "")
        ended = update.timestamp or self._clock.now()
        _, logged = await self._callers.log_ringing(
            uow, call, started_at=ended - timedelta(seconds=update.duration_seconds or 0), unrouted=True
        )
        if logged.created:
            # Should its webhook still come: it is over.
            logged.interaction.call_decision = DecisionKind.HANG_UP.value
            log.warning("inbound call %s ended before it was logged: logged as missed", call.call_sid)
        return logged.interaction

    async def agent_leg_status(self, agent_id: int, parent_call_sid: str, update: CallStatusUpdate) -> None:
        """The agent's leg answered or ended. Twilio does not promise the order: the end may come
        before the answer. The end always wraps the agent up (from ringing or on-call); a late
        answer still records who took the call, but moves only an agent still ringing for it."""
        if update.status is CallStatus.IN_PROGRESS:
            answered = await self._mark_answered(parent_call_sid, agent_id)
            await self._presence.answer(
                agent_id,
                parent_call_sid,
                announce=self._uow.publisher.publish,
                with_events=[answered] if answered is not None else [],
            )
            return
        if update.status in TERMINAL:
            await self._wrap_up(agent_id, parent_call_sid, announce=True)

    async def _wrap_up(
        self, agent_id: int, call_sid: str, *, announce: bool, if_was: AgentState | None = None
    ) -> WrappedUp | None:
        """The agent's part of the call is over: wrap-up, then available again by itself."""
        wrapped = await self._presence.wrap_up(
            agent_id,
            call_sid,
            self._policy.wrap_up_seconds,
            announce=self._uow.publisher.publish if announce else None,
            if_was=if_was,
        )
        if wrapped is not None and wrapped.presence.until is not None:
            self._free_at(wrapped.presence.until)
        return wrapped

    async def _mark_answered(self, call_sid: str, agent_id: int) -> DomainEvent | None:
        """Record who answered and return the ``call.updated`` event to announce; None when it
        was already recorded (a repeated callback) or the call is unknown."""
        async with self._connections.connect() as conn:
            marked = await mark_answered(conn, call_sid, agent_id, self._clock.now())
        if marked is None:
            return None
        interaction_id, customer_id, ticket_id = marked
        return call_updated(call_sid, interaction_id, customer_id, agent_id, "answered", ticket_id)

    async def dial_finished(self, outcome: DialOutcome) -> CallDecision:
        if outcome.status in ANSWERED_DIAL:
            if outcome.agent_id is not None:
                events: list[DomainEvent] = []
                # Announced with the change when the agent was on the call (the usual case).
                wrapped = await self._wrap_up(
                    outcome.agent_id, outcome.call_sid, announce=True, if_was=AgentState.ON_CALL
                )
                if wrapped is None or wrapped.was is not AgentState.ON_CALL:
                    # Proof that the agent took the call, should the agent leg's callbacks be lost
                    # (ON_CALL means the answer is recorded already).
                    answered = await self._mark_answered(outcome.call_sid, outcome.agent_id)
                    events += [answered] if answered is not None else []
                events += [presence_changed(wrapped.presence)] if wrapped and not wrapped.announced else []
                if events:
                    await self._uow.publisher.publish(events)
            return CallDecision(DecisionKind.HANG_UP)
        # The offered agent did not pick up: they go "away" (not ready) and the call is routed
        # again. A caller who hung up while the agent's phone rang is no fault of the agent's:
        # they are free again, and there is nobody left to route.
        released = outcome.agent_id is not None and await self._offers.release(
            outcome.agent_id, outcome.call_sid
        )
        if released and outcome.agent_id is not None and not outcome.caller_gone:
            await self._offers.set_presence(outcome.agent_id, AgentState.AWAY)
        if outcome.caller_gone:
            return CallDecision(DecisionKind.HANG_UP)
        async with self._uow() as uow:
            interaction = await locked_call(uow, outcome.call_sid)
            if interaction is None:
                return CallDecision(DecisionKind.HANG_UP)
            agent_id = await self._offers.route(owner_id=None, call_sid=outcome.call_sid)
            try:
                decision = await self._offers.offer_or_queue(
                    uow, interaction, interaction.customer_id, agent_id
                )
                await uow.commit()
            except BaseException:
                if agent_id is not None:
                    await self._offers.release(agent_id, outcome.call_sid)
                raise
        return decision
