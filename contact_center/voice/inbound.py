"""A call arrives: the caller is resolved, the call logged keyed by CallSid, and routed to an agent
(sticky owner first, then the longest idle) who gets the card, or queued; voicemail when closed."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contact_center.group_commit import GroupCommit
from contact_center.routing.claim import claim_agent
from contact_center.routing.presence import AgentState, Presence, PresenceStore, presence_changed
from contact_center.routing.roster import RosterCache
from contact_center.voice.events import call_updated, screen_pop
from contact_center.voice.offers import CallOffers, routing_owner
from contact_center.voice.queue import NobodyFree
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import InvalidInput
from crm_core.events import DomainEvent
from crm_core.models import Customer
from crm_core.ports import Clock
from crm_core.rules.caller_id import names_nobody
from crm_core.services.customer_card import card_by_customer
from crm_core.services.identity import resolve_phone
from crm_core.services.inbound_calls import (
    MAX_QUEUED_PER_STATEMENT,
    LoggedCall,
    QueuedCall,
    log_inbound_call,
    log_queued_calls,
    look_up_caller,
    stored_call,
)
from crm_core.services.interactions import Logged, interaction_logged, log_interaction
from crm_core.services.withheld_callers import withheld_caller
from crm_core.sql import AutocommitConnections, Executor
from crm_core.types import Channel, Direction
from crm_core.voice import QUEUED_FOR_AGENT, CallDecision, CallStatus, DecisionKind, InboundCall

if TYPE_CHECKING:
    from contact_center.voice.desk import CallPolicy

# A caller id exactly as Twilio sends a valid number (and as customer phones are stored).
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Callers:
    """Who is calling: the customer of the caller's number, and the call logged as ringing."""

    def __init__(self, policy: CallPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._withheld_id: int | None = None  # the shared customer of withheld callers, once found

    async def log_ringing(
        self, uow: UnitOfWork, call: InboundCall, started_at: datetime | None = None, **meta: Any
    ) -> tuple[Customer, Logged]:
        """The call's customer, and its interaction logged as ringing (a retry finds the first);
        ``meta`` goes into the interaction's metadata beside the caller's number and name."""
        customer = await self._caller(uow, call)
        logged = await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=customer.id,
            external_id=call.call_sid,
            status=CallStatus.RINGING.value,
            started_at=started_at,
            now=self._clock.now(),
            meta={"from": call.from_number, "to": call.to_number, "caller_name": call.caller_name, **meta},
        )
        return customer, logged

    async def _caller(self, uow: UnitOfWork, call: InboundCall) -> Customer:
        if not names_nobody(call.from_number):
            try:
                return (
                    await resolve_phone(uow, call.from_number, region=self._policy.region, source="voice")
                ).customer
            except InvalidInput:
                pass  # not a phone number: as good as withheld
        # No usable number: every such call is logged against one shared customer.
        customer = await withheld_caller(uow, self._withheld_id)
        self._withheld_id = customer.id
        return customer


class InboundCalls:
    """Answers "a call arrived" (:meth:`crm_core.ports.VoiceCalls.inbound_call`)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        roster: RosterCache,
        connections: AutocommitConnections,
        offers: CallOffers,
        callers: Callers,
        nobody_free: NobodyFree,
        run_the_queue: Callable[[], None],
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._presence = presence
        self._policy = policy
        self._roster = roster
        self._connections = connections
        self._offers = offers
        self._callers = callers
        self._nobody_free = nobody_free
        self._run_the_queue = run_the_queue
        self._queued_calls = GroupCommit(self._log_queued_calls, max_items=MAX_QUEUED_PER_STATEMENT)

    async def close(self) -> None:
        await self._queued_calls.close()

    async def inbound_call(self, call: InboundCall) -> CallDecision:
        decision = await self._inbound_while_open(call)
        if decision is None:
            decision = await self._inbound_call(call)
        return decision

    async def _inbound_while_open(self, call: InboundCall) -> CallDecision | None:
        """The common case: a caller with a valid E.164 number, while open.

        Two statements (and the card when routed): the caller is looked up (with their owner, for
        sticky routing; a number not on file becomes a new customer first), an agent is claimed,
        and the interaction is inserted once with its final status and agent. While nobody is
        free, a caller joins the queue with no lookup (:meth:`_queue_while_nobody_is_free`). None
        sends the call down :meth:`_inbound_call` (withheld or malformed numbers, voicemail
        outside business hours).
        """
        if (
            not E164.fullmatch(call.from_number)
            or names_nobody(call.from_number)
            or not self._policy.hours.is_open(self._clock.now())
        ):
            return None
        routed = await self._queue_while_nobody_is_free(call) if self._nobody_free.stands else None
        if routed is None:
            async with self._connections.connect() as conn:
                caller = await look_up_caller(conn, call.from_number, call.call_sid)
                if caller is not None and caller.logged_id is not None:
                    return await self._decision_of_logged(conn, call.call_sid)
                customer = (caller.customer_id, caller.owner_id) if caller else await self._new_caller(call)
                if customer is None:
                    return None
                routed = await self._route_and_log(conn, call, *customer)
        decision, events = routed
        await self._uow.publisher.publish(events)
        return decision

    async def _new_caller(self, call: InboundCall) -> tuple[int, int | None] | None:
        """The customer of a number not on file as given (created in the pool when unknown);
        None for a number that is not a valid phone number."""
        async with self._uow() as uow:
            try:
                customer = (
                    await resolve_phone(uow, call.from_number, region=self._policy.region, source="voice")
                ).customer
            except InvalidInput:
                return None
            await uow.commit()
        return customer.id, customer.owner_id

    async def _route_and_log(
        self, conn: AsyncConnection, call: InboundCall, customer_id: int, owner_id: int | None
    ) -> tuple[CallDecision, list[DomainEvent]]:
        roster = await self._roster.get()
        agent_id = await claim_agent(
            self._presence, roster, owner_id=owner_id, skill=None, call_sid=call.call_sid
        )
        self._nobody_free.claimed(agent_id)
        try:
            return await self._log_routed_call(conn, call, customer_id, agent_id)
        except BaseException:
            if agent_id is not None:
                await self._offers.release(agent_id, call.call_sid)
            raise

    async def _queue_while_nobody_is_free(
        self, call: InboundCall
    ) -> tuple[CallDecision, list[DomainEvent]] | None:
        """Queue the caller while nobody is free: no lookup, no routing, one row written together
        with those of the other callers arriving meanwhile (:class:`GroupCommit`).

        Whether anyone is free is asked at most every
        :data:`~contact_center.voice.queue.NOBODY_FREE_HINT_SECONDS`: in between, the last failed
        claim answers. An agent who frees up meanwhile is not missed: their availability (or the
        end of their wrap-up) offers them the longest-waiting caller, who came first anyway. When
        the claim finds someone free, it is undone, the caller joins the queue all the same and the
        queue is run at once: those who waited are offered first. None when the number is not on
        file or the call is already logged: the usual path sorts those out.
        """
        someone_free = False
        if not self._nobody_free.just_now():
            roster = await self._roster.get()
            agent_id = await claim_agent(
                self._presence, roster, owner_id=None, skill=None, call_sid=call.call_sid
            )
            if agent_id is None:
                self._nobody_free.claimed(None)
            else:
                # Never announced: nothing to undo. The hint stays (stale) until a queue run finds
                # nobody waiting, so that callers keep joining the queue behind those who wait.
                await self._presence.release(agent_id, call.call_sid)
                someone_free = True
        queued = QueuedCall(call.call_sid, call.from_number, self._clock.now(), self._caller_meta(call))
        logged = await self._queued_calls.submit(queued)
        if someone_free:
            # Someone freed up without a word while callers may be waiting: the queue is offered
            # to them in order, this caller (now at its end) included.
            self._run_the_queue()
        return None if logged is None else self._queued(call, logged)

    async def _log_queued_calls(self, calls: Sequence[QueuedCall]) -> list[LoggedCall | None]:
        async with self._connections.connect() as conn:
            return await log_queued_calls(conn, calls, QUEUED_FOR_AGENT)

    @staticmethod
    def _caller_meta(call: InboundCall) -> dict[str, Any]:
        return {"from": call.from_number, "to": call.to_number, "caller_name": call.caller_name}

    async def _log_routed_call(
        self, conn: AsyncConnection, call: InboundCall, customer_id: int, agent_id: int | None
    ) -> tuple[CallDecision, list[DomainEvent]]:
        now = self._clock.now()
        logged = await log_inbound_call(
            conn,
            call_sid=call.call_sid,
            customer=customer_id,
            agent_id=agent_id,
            status=QUEUED_FOR_AGENT if agent_id is None else CallStatus.RINGING.value,
            started_at=now,
            meta=self._caller_meta(call),
        )
        if logged is None:
            # A retry of this webhook got here first: undo our claim and answer as it did.
            if agent_id is not None:
                await self._offers.release(agent_id, call.call_sid)
            return await self._decision_of_logged(conn, call.call_sid), []
        if agent_id is None:
            return self._queued(call, logged)
        card = await card_by_customer(conn, customer_id)
        events = [
            interaction_logged(
                logged.interaction_id, customer_id, Channel.VOICE, Direction.INBOUND, agent_id=agent_id
            ),
            presence_changed(Presence(agent_id, AgentState.RINGING, now, call_sid=call.call_sid)),
            screen_pop(agent_id, call.call_sid, logged.interaction_id, call.from_number, card),
        ]
        decision = self._offers.connect_decision(agent_id, logged.agent_phone, say=[self._policy.greeting])
        return decision, events

    @staticmethod
    def _queued(call: InboundCall, logged: LoggedCall) -> tuple[CallDecision, list[DomainEvent]]:
        events = [
            interaction_logged(logged.interaction_id, logged.customer_id, Channel.VOICE, Direction.INBOUND),
            call_updated(call.call_sid, logged.interaction_id, logged.customer_id, None, "queued", None),
        ]
        return CallDecision(DecisionKind.ENQUEUE, say=[]), events

    async def _decision_of_logged(self, db: Executor, call_sid: str) -> CallDecision:
        stored = await stored_call(db, call_sid)
        if stored is None:
            return await self._offers.decision_from(db, None, None)
        return await self._offers.decision_from(db, stored.decision, stored.routed_agent_id)

    async def _inbound_call(self, call: InboundCall) -> CallDecision:
        async with self._uow() as uow:
            customer, logged = await self._callers.log_ringing(uow, call)
            interaction = logged.interaction
            if not logged.created:
                # Twilio retried the webhook: answer as the first time, route nobody twice.
                await uow.commit()
                return await self._offers.decision_from(
                    uow.session, interaction.call_decision, interaction.routed_agent_id
                )
            if not self._policy.hours.is_open(self._clock.now()):
                decision = CallDecision(DecisionKind.VOICEMAIL, say=[self._policy.closed_message])
                self._offers.remember(interaction, decision)
                await uow.commit()
                return decision
            agent_id = await self._offers.route(owner_id=routing_owner(customer), call_sid=call.call_sid)
            try:
                decision = await self._offers.offer_or_queue(uow, interaction, customer.id, agent_id)
                await uow.commit()
            except BaseException:
                if agent_id is not None:
                    await self._offers.release(agent_id, call.call_sid)
                raise
        return decision
