"""Call handling: the application's answer to every voice webhook (implements crm_core's VoiceCalls).

An inbound call resolves the caller, is logged keyed by CallSid, is routed to an agent (sticky owner
first, then the longest idle), and pops the customer card on that agent's socket after commit. With
nobody free the caller waits in the queue; outside business hours they may leave a voicemail. A call
that ends without reaching an agent opens a callback ticket (or joins the open one).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contact_center.group_commit import GroupCommit
from contact_center.presence import AgentState, Presence, PresenceStore, WrappedUp, presence_changed
from contact_center.routing import RosterCache, claim_agent
from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import GatewayError, InvalidInput
from crm_core.events import DomainEvent
from crm_core.models import Agent, Customer, Interaction, Ticket, utcnow
from crm_core.ports import CallControl
from crm_core.rules.business_hours import BusinessHours
from crm_core.rules.call_status import TERMINAL, should_apply
from crm_core.rules.caller_id import names_nobody
from crm_core.services.customer_card import CustomerCard, card_by_customer
from crm_core.services.identity import resolve_phone
from crm_core.services.inbound_calls import (
    MAX_QUEUED_PER_STATEMENT,
    LoggedCall,
    QueuedCall,
    log_inbound_call,
    log_queued_calls,
    look_up_caller,
    mark_answered,
    stored_call,
)
from crm_core.services.interactions import Logged, interaction_logged, log_interaction
from crm_core.services.tickets import SlaPolicy, open_ticket, open_ticket_for_customer, system_note
from crm_core.services.withheld_callers import is_withheld_callers, withheld_caller
from crm_core.sql import AutocommitConnections, Executor
from crm_core.types import Channel, Direction, Priority
from crm_core.voice import (
    CallDecision,
    CallStatus,
    CallStatusUpdate,
    DecisionKind,
    DialOutcome,
    InboundCall,
    QueueOutcome,
    QueueWait,
    Recording,
)

log = logging.getLogger(__name__)

SCREEN_POP = "call.screen_pop"
CALL_UPDATED = "call.updated"
CALLBACK = "callback"
VOICEMAIL = "voicemail"
ANSWERED_DIAL = frozenset({"completed", "answered"})
QUEUED_FOR_AGENT = "queued-for-agent"
OFFERING = "offering"
# How much longer than a ring an offer may stay unconfirmed before a waiting caller is queued again.
OFFER_GRACE_SECONDS = 10
# How long a caller whose redirect Twilio refused is not offered again (by this instance). Releasing
# the agent announces them available, which would otherwise offer the same caller again at once, in
# a loop, until the call's final status arrives.
REFUSED_REDIRECT_BACKOFF_SECONDS = 5.0
# How long a claim that found nobody free stands for the callers after it (see
# :meth:`CallDesk._queue_while_nobody_is_free`).
NOBODY_FREE_HINT_SECONDS = 1.0
# How long after a wrap-up's end the queue is looked at (the claim must see the agent free).
WRAP_UP_END_MARGIN_SECONDS = 0.05
# A caller id exactly as Twilio sends a valid number (and as customer phones are stored).
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def agent_identity(agent_id: int) -> str:
    """The Voice SDK client identity of an agent's browser."""
    return f"agent-{agent_id}"


def screen_pop(
    agent_id: int, call_sid: str, interaction_id: int, caller: str | None, card: CustomerCard | None
) -> DomainEvent:
    """The ``call.screen_pop`` event: the caller's card for the agent being rung."""
    return DomainEvent(
        SCREEN_POP,
        {
            "agent_id": agent_id,
            "call_sid": call_sid,
            "interaction_id": interaction_id,
            "from": caller,
            "card": card.to_json() if card else None,
        },
    )


def routing_owner(customer: Customer) -> int | None:
    """Whose customer the caller is, for sticky routing: nobody's for the shared record of
    withheld callers (should it be given an owner, they would get every withheld call)."""
    return None if is_withheld_callers(customer) else customer.owner_id


@dataclass(frozen=True, slots=True)
class CallPolicy:
    region: str
    sla: SlaPolicy
    hours: BusinessHours
    wrap_up_seconds: float
    ring_seconds: int = 20
    greeting: str = "Thank you for calling. Connecting you to an agent."
    queue_message: str = "All our agents are busy. Please hold, you are number {position} in line."
    closed_message: str = "We are closed right now. Please leave a message after the tone."


class CallDesk:
    """Implements :class:`crm_core.ports.VoiceCalls` on the CRM core, presence and routing."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        control: CallControl,
        connect_url: Callable[[int], str],
    ) -> None:
        self._uow = uow
        self._presence = presence
        self._policy = policy
        self._control = control
        self._connect_url = connect_url
        self._dequeue_lock = asyncio.Lock()
        self._roster = RosterCache(uow.engine)
        self._connections = AutocommitConnections(uow.engine)
        # When a claim last found nobody free (None: someone was free at the last claim).
        self._nobody_free_at: float | None = None
        self._refused_until: dict[str, float] = {}  # CallSid -> monotonic time it may be offered again
        self._queued_calls = GroupCommit(self._log_queued_calls, max_items=MAX_QUEUED_PER_STATEMENT)
        self._wrap_up_ends: set[asyncio.TimerHandle] = set()
        self._queue_runs: set[asyncio.Task[int]] = set()
        self._withheld_id: int | None = None  # the shared customer of withheld callers, once found

    async def close(self) -> None:
        for handle in self._wrap_up_ends:
            handle.cancel()
        for task in list(self._queue_runs):
            task.cancel()
        await asyncio.gather(*self._queue_runs, return_exceptions=True)
        await self._queued_calls.close()
        await self._connections.close()

    # --- inbound -----------------------------------------------------------------------------

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
            or not self._policy.hours.is_open(utcnow())
        ):
            return None
        routed = await self._queue_while_nobody_is_free(call) if self._nobody_free_at is not None else None
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

    def _claimed(self, agent_id: int | None) -> None:
        """Remember whether the last claim found someone free."""
        self._nobody_free_at = time.monotonic() if agent_id is None else None

    def _nobody_was_free_just_now(self) -> bool:
        at = self._nobody_free_at
        return at is not None and time.monotonic() - at < NOBODY_FREE_HINT_SECONDS

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
        self._claimed(agent_id)
        try:
            return await self._log_routed_call(conn, call, customer_id, agent_id)
        except BaseException:
            if agent_id is not None:
                await self._release(agent_id, call.call_sid)
            raise

    async def _queue_while_nobody_is_free(
        self, call: InboundCall
    ) -> tuple[CallDecision, list[DomainEvent]] | None:
        """Queue the caller while nobody is free: no lookup, no routing, one row written together
        with those of the other callers arriving meanwhile (:class:`GroupCommit`).

        Whether anyone is free is asked at most every :data:`NOBODY_FREE_HINT_SECONDS`: in between,
        the last failed claim answers. An agent who frees up meanwhile is not missed: their
        availability (or the end of their wrap-up) offers them the longest-waiting caller, who came
        first anyway. When the claim finds someone free, it is undone, the caller joins the queue
        all the same and the queue is run at once: those who waited are offered first. None when
        the number is not on file or the call is already logged: the usual path sorts those out.
        """
        someone_free = False
        if not self._nobody_was_free_just_now():
            roster = await self._roster.get()
            agent_id = await claim_agent(
                self._presence, roster, owner_id=None, skill=None, call_sid=call.call_sid
            )
            if agent_id is None:
                self._claimed(None)
            else:
                # Never announced: nothing to undo. The hint stays (stale) until a queue run finds
                # nobody waiting, so that callers keep joining the queue behind those who wait.
                await self._presence.release(agent_id, call.call_sid)
                someone_free = True
        now = utcnow()
        queued = QueuedCall(
            call.call_sid, call.from_number, now, self._routed_meta(call, DecisionKind.ENQUEUE, None, now)
        )
        logged = await self._queued_calls.submit(queued)
        if someone_free:
            # Someone freed up without a word while callers may be waiting: the queue is offered
            # to them in order, this caller (now at its end) included.
            self._run_the_queue()
        return None if logged is None else self._queued(call, logged)

    async def _log_queued_calls(self, calls: Sequence[QueuedCall]) -> list[LoggedCall | None]:
        async with self._connections.connect() as conn:
            return await log_queued_calls(conn, calls, QUEUED_FOR_AGENT)

    def _routed_meta(
        self, call: InboundCall, kind: DecisionKind, agent_id: int | None, now: datetime
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "from": call.from_number,
            "to": call.to_number,
            "caller_name": call.caller_name,
            "decision": kind.value,
            "routed_agent_id": agent_id,
        }
        if kind is DecisionKind.ENQUEUE:
            meta["queued_at"] = now.isoformat()
        return meta

    async def _log_routed_call(
        self, conn: AsyncConnection, call: InboundCall, customer_id: int, agent_id: int | None
    ) -> tuple[CallDecision, list[DomainEvent]]:
        now = utcnow()
        kind = DecisionKind.ENQUEUE if agent_id is None else DecisionKind.CONNECT_AGENT
        logged = await log_inbound_call(
            conn,
            call_sid=call.call_sid,
            customer=customer_id,
            agent_id=agent_id,
            status=QUEUED_FOR_AGENT if agent_id is None else CallStatus.RINGING.value,
            started_at=now,
            meta=self._routed_meta(call, kind, agent_id, now),
        )
        if logged is None:
            # A retry of this webhook got here first: undo our claim and answer as it did.
            if agent_id is not None:
                await self._release(agent_id, call.call_sid)
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
        return self._connect_decision(agent_id, logged.agent_phone, say=[self._policy.greeting]), events

    @staticmethod
    def _queued(call: InboundCall, logged: LoggedCall) -> tuple[CallDecision, list[DomainEvent]]:
        events = [
            interaction_logged(logged.interaction_id, logged.customer_id, Channel.VOICE, Direction.INBOUND),
            DomainEvent(
                CALL_UPDATED,
                {
                    "call_sid": call.call_sid,
                    "interaction_id": logged.interaction_id,
                    "customer_id": logged.customer_id,
                    "agent_id": None,
                    "state": "queued",
                    "ticket_id": None,
                },
            ),
        ]
        return CallDecision(DecisionKind.ENQUEUE, say=[]), events

    async def _decision_of_logged(self, db: Executor, call_sid: str) -> CallDecision:
        stored = await stored_call(db, call_sid)
        return await self._decision_from(db, stored.meta if stored else {})

    async def _inbound_call(self, call: InboundCall) -> CallDecision:
        async with self._uow() as uow:
            customer, logged = await self._log_ringing(uow, call)
            interaction = logged.interaction
            if not logged.created:
                # Twilio retried the webhook: answer as the first time, route nobody twice.
                await uow.commit()
                return await self._decision_from(uow.session, interaction.meta)
            if not self._policy.hours.is_open(utcnow()):
                decision = CallDecision(DecisionKind.VOICEMAIL, say=[self._policy.closed_message])
                self._remember(interaction, decision)
                await uow.commit()
                return decision
            agent_id = await self._route(owner_id=routing_owner(customer), call_sid=call.call_sid)
            try:
                decision = await self._offer_or_queue(uow, interaction, customer.id, agent_id)
                await uow.commit()
            except BaseException:
                if agent_id is not None:
                    await self._release(agent_id, call.call_sid)
                raise
        return decision

    async def _route(self, *, owner_id: int | None, call_sid: str) -> int | None:
        roster = await self._roster.get()
        agent_id = await claim_agent(self._presence, roster, owner_id=owner_id, skill=None, call_sid=call_sid)
        if agent_id is not None:
            # The claim just made the agent RINGING for this call: no need to read it back.
            await self._announce(Presence(agent_id, AgentState.RINGING, utcnow(), call_sid=call_sid))
        return agent_id

    async def _set_presence(self, agent_id: int, state: AgentState, **kwargs: Any) -> None:
        await self._announce(await self._presence.set(agent_id, state, **kwargs))

    async def _release(self, agent_id: int, call_sid: str) -> bool:
        released = await self._presence.release(agent_id, call_sid)
        if released:
            await self._announce(await self._presence.get(agent_id))
        return released

    async def _announce(self, presence: Presence) -> None:
        await self._uow.publisher.publish([presence_changed(presence)])

    async def _log_ringing(
        self, uow: UnitOfWork, call: InboundCall, started_at: datetime | None = None, **meta: Any
    ) -> tuple[Customer, Logged]:
        """The call's customer, and its interaction logged as ringing (a retry finds the first)."""
        customer = await self._caller(uow, call)
        logged = await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=customer.id,
            external_id=call.call_sid,
            status=CallStatus.RINGING.value,
            started_at=started_at,
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

    async def _offer_or_queue(
        self, uow: UnitOfWork, interaction: Interaction, customer_id: int, agent_id: int | None
    ) -> CallDecision:
        if agent_id is None:
            interaction.status = QUEUED_FOR_AGENT
            decision = CallDecision(DecisionKind.ENQUEUE, say=[])
            self._remember(interaction, decision, queued_at=utcnow().isoformat())
            uow.record(self._call_event(interaction, "queued"))
            return decision
        interaction.agent_id = agent_id
        decision = await self._connect(uow.session, agent_id, say=[self._policy.greeting])
        self._remember(interaction, decision)
        await uow.session.flush()
        card = await card_by_customer(uow.session, customer_id)
        call_sid = str(interaction.external_id)
        uow.record(screen_pop(agent_id, call_sid, interaction.id, interaction.meta.get("from"), card))
        return decision

    @staticmethod
    def _remember(interaction: Interaction, decision: CallDecision, **extra: Any) -> None:
        interaction.meta = {
            **interaction.meta,
            "decision": decision.kind.value,
            "routed_agent_id": decision.agent_id,
            **extra,
        }

    async def _connect(self, db: Executor, agent_id: int, say: list[str]) -> CallDecision:
        phone = await db.scalar(select(Agent.phone).where(Agent.id == agent_id))
        return self._connect_decision(agent_id, phone, say)

    def _connect_decision(self, agent_id: int, phone: str | None, say: list[str]) -> CallDecision:
        """Ring the agent: their own phone when they set one, else their browser."""
        return CallDecision(
            DecisionKind.CONNECT_AGENT,
            agent_id=agent_id,
            agent_identity=None if phone else agent_identity(agent_id),
            agent_number=phone,
            say=say,
            ring_seconds=self._policy.ring_seconds,
        )

    async def _decision_from(self, db: Executor, meta: dict[str, Any]) -> CallDecision:
        kind = DecisionKind(meta.get("decision", DecisionKind.ENQUEUE.value))
        agent_id = meta.get("routed_agent_id")
        if kind is DecisionKind.CONNECT_AGENT and isinstance(agent_id, int):
            return await self._connect(db, agent_id, say=[self._policy.greeting])
        if kind is DecisionKind.VOICEMAIL:
            return CallDecision(kind, say=[self._policy.closed_message])
        if kind is DecisionKind.HANG_UP:
            return CallDecision(kind)
        return CallDecision(DecisionKind.ENQUEUE)

    # --- progress ----------------------------------------------------------------------------

    async def _interaction(self, uow: UnitOfWork, call_sid: str) -> Interaction | None:
        found: Interaction | None = await uow.session.scalar(
            select(Interaction)
            .where(Interaction.channel == Channel.VOICE, Interaction.external_id == call_sid)
            .with_for_update()
        )
        return found

    async def call_status(self, update: CallStatusUpdate) -> None:
        release: tuple[int, str] | None = None
        wrap_up: tuple[int, str] | None = None
        async with self._uow() as uow:
            interaction = await self._interaction(uow, update.call_sid) or await self._log_unrouted(
                uow, update
            )
            if interaction is None:
                log.info("status %s for unknown call %s ignored", update.status, update.call_sid)
                return
            meta = dict(interaction.meta)
            if not should_apply(
                interaction.status, meta.get("sequence"), update.status, update.sequence_number
            ):
                return
            interaction.status = update.status.value
            meta["sequence"] = update.sequence_number
            if update.status in TERMINAL:
                interaction.ended_at = update.timestamp or utcnow()
                interaction.duration_seconds = update.duration_seconds
                if update.recording_url:
                    meta["recording_url"] = update.recording_url
                routed = meta.get("routed_agent_id")
                if isinstance(routed, int) and not meta.get("answered_at"):
                    release = (routed, update.call_sid)
                answered_by = meta.get("answered_by")
                if isinstance(answered_by, int):
                    # Should the agent leg's end and the dial action be lost or late, the call's
                    # own end still frees whoever took it (a no-op once they have moved on).
                    wrap_up = (answered_by, update.call_sid)
                if not meta.get("answered_at") and not meta.get("recording_url"):
                    meta["missed"] = True
                    await self._callback_ticket(uow, interaction)
            interaction.meta = meta  # a new dict: the ORM sees the change
            uow.record(self._call_event(interaction, update.status.value))
            await uow.commit()
        if release is not None:
            await self._release(*release)
        if wrap_up is not None:
            await self._wrap_up(*wrap_up, announce=True)

    async def _log_unrouted(self, uow: UnitOfWork, update: CallStatusUpdate) -> Interaction | None:
        """An inbound call that ended before it was ever logged (its webhook failed or never came
        through, and the caller gave up): log it now, so that it counts as missed and the caller
        is called back. None for any other unknown call."""
        if update.status not in TERMINAL or update.direction != "inbound" or update.from_number is None:
            return None
        call = InboundCall(update.call_sid, update.from_number, update.to_number or "")
        ended = update.timestamp or utcnow()
        _, logged = await self._log_ringing(
            uow,
            call,
            started_at=ended - timedelta(seconds=update.duration_seconds or 0),
            decision=DecisionKind.HANG_UP.value,  # should its webhook still come: it is over
            unrouted=True,
        )
        if logged.created:
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
            self._look_at_the_queue_at(wrapped.presence.until)
        return wrapped

    def _look_at_the_queue_at(self, moment: datetime) -> None:
        """A wrap-up ends without a word: offer the waiting callers the moment it does, rather than
        at the queue timer's next turn (which still covers an instance that stops meanwhile)."""
        delay = max(0.0, (moment - utcnow()).total_seconds()) + WRAP_UP_END_MARGIN_SECONDS
        self._wrap_up_ends.add(asyncio.get_running_loop().call_later(delay, self._wrap_up_ended))

    def _wrap_up_ended(self) -> None:
        now = asyncio.get_running_loop().time()
        self._wrap_up_ends = {h for h in self._wrap_up_ends if not h.cancelled() and h.when() > now}
        if self._nobody_free_at is not None:  # else nobody waited at the last claim or queue run
            self._run_the_queue()

    def _run_the_queue(self) -> None:
        """:meth:`connect_waiting_callers` in the background (a webhook never waits for it)."""
        task = asyncio.create_task(self.connect_waiting_callers(), name="connect-waiting-callers")
        self._queue_runs.add(task)
        task.add_done_callback(self._queue_runs.discard)

    async def _mark_answered(self, call_sid: str, agent_id: int) -> DomainEvent | None:
        """Record who answered and return the ``call.updated`` event to announce; None when it
        was already recorded (a repeated callback) or the call is unknown."""
        async with self._connections.connect() as conn:
            marked = await mark_answered(conn, call_sid, agent_id, utcnow())
        if marked is None:
            return None
        interaction_id, customer_id, ticket_id = marked
        return DomainEvent(
            CALL_UPDATED,
            {
                "call_sid": call_sid,
                "interaction_id": interaction_id,
                "customer_id": customer_id,
                "agent_id": agent_id,
                "state": "answered",
                "ticket_id": ticket_id,
            },
        )

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
        # The offered agent did not pick up: they go "away" (not ready) and the call is routed again.
        if outcome.agent_id is not None and await self._release(outcome.agent_id, outcome.call_sid):
            await self._set_presence(outcome.agent_id, AgentState.AWAY)
        async with self._uow() as uow:
            interaction = await self._interaction(uow, outcome.call_sid)
            if interaction is None:
                return CallDecision(DecisionKind.HANG_UP)
            agent_id = await self._route(owner_id=None, call_sid=outcome.call_sid)
            try:
                decision = await self._offer_or_queue(uow, interaction, interaction.customer_id, agent_id)
                await uow.commit()
            except BaseException:
                if agent_id is not None:
                    await self._release(agent_id, outcome.call_sid)
                raise
        return decision

    # --- the queue ---------------------------------------------------------------------------

    async def connect_waiting_callers(self) -> int:
        """Offer the longest-waiting queued callers to the agents who are free now.

        Runs on a timer on every instance and whenever an agent becomes available; the row lock
        (SKIP LOCKED on PostgreSQL) and the presence claim keep two instances from offering one
        caller twice or one agent two callers. Returns how many callers were offered.
        """
        offered = 0
        async with self._dequeue_lock:
            while await self._offer_longest_waiting():
                offered += 1
        return offered

    def _backing_off(self) -> list[str]:
        """The callers whose redirect was refused a moment ago (expired entries dropped)."""
        if not self._refused_until:
            return []
        now = time.monotonic()
        self._refused_until = {sid: until for sid, until in self._refused_until.items() if until > now}
        return list(self._refused_until)

    async def _offer_longest_waiting(self) -> bool:
        async with self._uow() as uow:
            waiting = (
                select(Interaction)
                # A literal, so PostgreSQL matches the partial index ix_interactions_waiting.
                .where(
                    Interaction.status == literal_column(f"'{QUEUED_FOR_AGENT}'"),
                    Interaction.channel == Channel.VOICE,
                )
                .order_by(Interaction.started_at, Interaction.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if backing_off := self._backing_off():
                waiting = waiting.where(Interaction.external_id.not_in(backing_off))
            interaction = await uow.session.scalar(waiting)
            if interaction is None:
                self._nobody_free_at = None  # nobody waits: the next caller asks who is free
                return False
            customer = await uow.session.get_one(Customer, interaction.customer_id)
            call_sid = str(interaction.external_id)
            agent_id = await self._route(owner_id=routing_owner(customer), call_sid=call_sid)
            if agent_id is None:
                self._claimed(None)
                return False
            try:
                await self._offer_or_queue(uow, interaction, interaction.customer_id, agent_id)
                interaction.status = OFFERING
                interaction.meta = {**interaction.meta, "offered_at": utcnow().isoformat()}
                await uow.commit()
            except BaseException:
                await self._release(agent_id, call_sid)
                raise
        try:
            await self._control.redirect_call(call_sid, self._connect_url(agent_id))
        except GatewayError as exc:
            if exc.status is None:
                # No answer from Twilio: the redirect may well have landed (the agent's phone may be
                # ringing already), so the offer stands. Should the caller still be waiting, the
                # queue's next wait request takes the offer back (:meth:`queue_wait`).
                log.warning("redirect of %s to agent %s unconfirmed: %s", call_sid, agent_id, exc)
                return False
            log.warning("could not take %s out of the queue: %s", call_sid, exc)
            self._refused_until[call_sid] = time.monotonic() + REFUSED_REDIRECT_BACKOFF_SECONDS
            await self._release(agent_id, call_sid)
            await self._requeue(call_sid)
            return False
        return True

    async def _requeue(self, call_sid: str) -> None:
        """Back into the queue: only an offer nobody answered (an answer is never undone)."""
        async with self._uow() as uow:
            interaction = await self._interaction(uow, call_sid)
            if (
                interaction is not None
                and interaction.status == OFFERING
                and not interaction.meta.get("answered_at")
            ):
                interaction.status = QUEUED_FOR_AGENT
                interaction.agent_id = None
                await uow.commit()

    async def _take_back_stale_offer(self, call_sid: str) -> None:
        """The caller still waits in Twilio's queue although offered to an agent longer than a ring
        lasts: the redirect never landed. Release the agent and queue the caller again."""
        async with self._connections.connect() as conn:
            stored = await stored_call(conn, call_sid)
        if stored is None or stored.status != OFFERING or stored.meta.get("answered_at"):
            return
        offered_at = stored.meta.get("offered_at")
        if not isinstance(offered_at, str) or not isinstance(stored.agent_id, int):
            return
        age = (utcnow() - datetime.fromisoformat(offered_at)).total_seconds()
        if age <= self._policy.ring_seconds + OFFER_GRACE_SECONDS:
            return
        await self._release(stored.agent_id, call_sid)
        await self._requeue(call_sid)

    async def connect_agent(self, call_sid: str, agent_id: int) -> CallDecision:
        """A queued caller taken out of the queue: ring the agent claimed for them."""
        presence = await self._presence.get(agent_id)
        if presence.state is not AgentState.RINGING or presence.call_sid != call_sid:
            # The claim was undone meanwhile: back into the queue.
            await self._requeue(call_sid)
            return CallDecision(DecisionKind.ENQUEUE)
        async with self._uow() as uow:
            return await self._connect(uow.session, agent_id, say=[])

    async def queue_wait(self, wait: QueueWait) -> list[str]:
        # Twilio asks for hold music only for a caller in its queue.
        await self._take_back_stale_offer(wait.call_sid)
        return [self._policy.queue_message.format(position=wait.position)]

    async def queue_finished(self, outcome: QueueOutcome) -> CallDecision:
        return CallDecision(DecisionKind.HANG_UP)

    async def recording_ready(self, recording: Recording) -> None:
        async with self._uow() as uow:
            interaction = await self._interaction(uow, recording.call_sid)
            if interaction is None:
                return
            if interaction.meta.get("recording_url") == recording.recording_url:
                return
            interaction.meta = {
                **interaction.meta,
                "recording_url": recording.recording_url,
                "recording_sid": recording.recording_sid,
                "recording_seconds": recording.duration_seconds,
            }
            if interaction.ticket_id is None:
                caller = interaction.meta.get("from") or "a withheld number"
                ticket = await self._system_ticket(uow, interaction, f"Voicemail from {caller}", VOICEMAIL)
                interaction.ticket_id = ticket.id
                await system_note(uow, ticket, f"Voicemail recording: {recording.recording_url}")
            await uow.commit()

    # --- tickets and events ------------------------------------------------------------------

    async def _system_ticket(
        self, uow: UnitOfWork, interaction: Interaction, subject: str, category: str
    ) -> Ticket:
        """A ticket the call desk opens by itself for the caller (high priority, source voice)."""
        return await open_ticket(
            uow,
            None,
            customer_id=interaction.customer_id,
            sla=self._policy.sla,
            subject=subject,
            source_channel=Channel.VOICE,
            category=category,
            priority=Priority.HIGH,
        )

    async def _callback_ticket(self, uow: UnitOfWork, interaction: Interaction) -> None:
        """A missed call: join the customer's open callback ticket, or open one."""
        caller = interaction.meta.get("from") or "a withheld number"
        ticket = await open_ticket_for_customer(uow.session, interaction.customer_id, category=CALLBACK)
        if ticket is None:
            ticket = await self._system_ticket(uow, interaction, f"Call back {caller}", CALLBACK)
        await system_note(
            uow, ticket, f"Missed call from {caller} at {interaction.started_at:%Y-%m-%d %H:%M} UTC"
        )
        interaction.ticket_id = ticket.id

    @staticmethod
    def _call_event(interaction: Interaction, state: str) -> DomainEvent:
        return DomainEvent(
            CALL_UPDATED,
            {
                "call_sid": interaction.external_id,
                "interaction_id": interaction.id,
                "customer_id": interaction.customer_id,
                "agent_id": interaction.agent_id,
                "state": state,
                "ticket_id": interaction.ticket_id,
            },
        )
