"""The queue: callers waiting for an agent, offered to agents as they become free."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal_column, select

from contact_center.routing.presence import AgentState, PresenceStore
from contact_center.voice.offers import (
    OFFERING,
    CallOffers,
    locked_call,
    routing_owner,
)
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import Customer, Interaction
from crm_core.ports import CallControl, Clock
from crm_core.services.inbound_calls import stored_call
from crm_core.sql import AutocommitConnections
from crm_core.types import Channel
from crm_core.voice import QUEUED_FOR_AGENT, CallDecision, DecisionKind, QueueOutcome, QueueWait

if TYPE_CHECKING:
    from contact_center.voice.desk import CallPolicy
    from contact_center.voice.reconcile import LostCalls

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
# Twilio's answers to a redirect of a call that is over: "not in progress", "not found".
CALL_IS_OVER = frozenset({21220, 20404})

# How much longer than a ring an offer may stay unconfirmed before a waiting caller is queued again.
OFFER_GRACE_SECONDS = 10
# How long a caller whose offer failed (Twilio refused the redirect, or it never landed) is not
# offered again (by this instance), doubling with each failure up to the cap. Releasing the agent
# announces them available, which would otherwise offer the same caller again at once, in a loop,
# until the call's final status arrives.
REFUSED_REDIRECT_BACKOFF_SECONDS = 5.0
MAX_REFUSED_BACKOFF_SECONDS = 300.0
# How long a claim that found nobody free stands for the callers after it (see
# :meth:`contact_center.voice.inbound.InboundCalls._queue_while_nobody_is_free`).
NOBODY_FREE_HINT_SECONDS = 1.0


class NobodyFree:
    """Whether the last claim found nobody free, and when (callers may be waiting while it stands)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._at: float | None = None  # None: someone was free at the last claim

    def claimed(self, agent_id: int | None) -> None:
        """Remember whether the last claim found someone free."""
        self._at = self._clock.monotonic() if agent_id is None else None

    def clear(self) -> None:
        """Nobody waits: the next caller asks who is free."""
        self._at = None

    @property
    def stands(self) -> bool:
        """Nobody was free at the last claim or queue run (callers may be waiting)."""
        return self._at is not None

    def just_now(self) -> bool:
        """Nobody was free at a claim less than :data:`NOBODY_FREE_HINT_SECONDS` ago."""
        at = self._at
        return at is not None and self._clock.monotonic() - at < NOBODY_FREE_HINT_SECONDS


class FailedOffers:
    """The callers whose offer failed, each kept from agents for a while that doubles with every
    failure (so an agent is not rung for a caller that cannot be connected again and again)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._failed: dict[str, tuple[int, float]] = {}  # CallSid -> (failures, offered again after)

    def failed(self, call_sid: str, *, first_free: bool = False) -> int:
        """One more failed offer of the caller; returns how many so far. ``first_free``: the first
        failure does not keep the caller waiting (an offer that merely never landed)."""
        count = self._failed.get(call_sid, (0, 0.0))[0] + 1
        wait = min(MAX_REFUSED_BACKOFF_SECONDS, REFUSED_REDIRECT_BACKOFF_SECONDS * 2 ** (count - 1))
        if first_free:
            wait = 0.0 if count == 1 else wait / 2
        self._failed[call_sid] = (count, self._clock.monotonic() + wait)
        return count

    def forget(self, call_sid: str) -> None:
        self._failed.pop(call_sid, None)

    def backing_off(self) -> list[str]:
        """The callers not to offer now; those whose wait is long over are forgotten."""
        if not self._failed:
            return []
        now = self._clock.monotonic()
        self._failed = {
            sid: entry for sid, entry in self._failed.items() if entry[1] + MAX_REFUSED_BACKOFF_SECONDS > now
        }
        return [sid for sid, (_, until) in self._failed.items() if until > now]

    def __contains__(self, call_sid: str) -> bool:
        return call_sid in self._failed


class CallQueue:
    """Offers the longest-waiting callers to free agents, and answers Twilio's queue webhooks."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        control: CallControl,
        connect_url: Callable[[int], str],
        offers: CallOffers,
        nobody_free: NobodyFree,
        connections: AutocommitConnections,
        spawn: Spawn,
        clock: Clock,
        lost_calls: LostCalls | None = None,
    ) -> None:
        self._clock = clock
        self._lost_calls = lost_calls
        self._uow = uow
        self._presence = presence
        self._policy = policy
        self._control = control
        self._connect_url = connect_url
        self._offers = offers
        self._nobody_free = nobody_free
        self._connections = connections
        self._spawn = spawn
        self._dequeue_lock = asyncio.Lock()
        self.failed_offers = FailedOffers(clock)

    def run_the_queue(self) -> None:
        """:meth:`connect_waiting_callers` in the background (a webhook never waits for it)."""
        self._spawn(self.connect_waiting_callers(), "connect-waiting-callers")

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
            if backing_off := self.failed_offers.backing_off():
                waiting = waiting.where(Interaction.external_id.not_in(backing_off))
            interaction = await uow.session.scalar(waiting)
            if interaction is None:
                self._nobody_free.clear()
                return False
            customer = await uow.session.get_one(Customer, interaction.customer_id)
            call_sid = str(interaction.external_id)
            agent_id = await self._offers.route(owner_id=routing_owner(customer), call_sid=call_sid)
            if agent_id is None:
                self._nobody_free.claimed(None)
                return False
            try:
                await self._offers.offer_or_queue(uow, interaction, interaction.customer_id, agent_id)
                interaction.status = OFFERING
                interaction.offered_at = self._clock.now()
                await uow.commit()
            except BaseException:
                await self._offers.release(agent_id, call_sid)
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
            await self._offers.release(agent_id, call_sid)
            if exc.code in CALL_IS_OVER and self._lost_calls is not None:
                # The caller hung up (or the call never was): no more offers, the call ends now.
                log.info("%s is over (Twilio error %s): closed, not offered again", call_sid, exc.code)
                self.failed_offers.forget(call_sid)
                await self._lost_calls.call_is_over(call_sid, exc.code)
                return False
            failures = self.failed_offers.failed(call_sid)
            log.warning("could not take %s out of the queue (offer %d failed): %s", call_sid, failures, exc)
            await self._requeue(call_sid)
            self._ask_twilio(call_sid)
            return False
        return True

    def _ask_twilio(self, call_sid: str) -> None:
        """An offer of the caller failed: ask Twilio in the background whether the call is over
        (its final status may have been lost), so that it is closed rather than offered again."""
        if self._lost_calls is not None:
            self._spawn(self._lost_calls.settle_quietly(call_sid), f"ask Twilio about {call_sid}")

    async def _requeue(self, call_sid: str) -> None:
        """Back into the queue: only an offer nobody answered (an answer is never undone)."""
        async with self._uow() as uow:
            interaction = await locked_call(uow, call_sid)
            if interaction is not None and interaction.status == OFFERING and interaction.answered_at is None:
                interaction.status = QUEUED_FOR_AGENT
                interaction.agent_id = None
                await uow.commit()

    async def _take_back_stale_offer(self, call_sid: str) -> None:
        """The caller still waits in Twilio's queue although offered to an agent longer than a ring
        lasts: the redirect never landed. Release the agent and queue the caller again."""
        async with self._connections.connect() as conn:
            stored = await stored_call(conn, call_sid)
        if stored is None or stored.status != OFFERING or stored.answered_at is not None:
            return
        if stored.offered_at is None or stored.agent_id is None:
            return
        age = (self._clock.now() - stored.offered_at).total_seconds()
        if age <= self._policy.ring_seconds + OFFER_GRACE_SECONDS:
            return
        await self._offers.release(stored.agent_id, call_sid)
        self.failed_offers.failed(call_sid, first_free=True)
        await self._requeue(call_sid)
        self._ask_twilio(call_sid)

    async def connect_agent(self, call_sid: str, agent_id: int) -> CallDecision:
        """A queued caller taken out of the queue: ring the agent claimed for them."""
        presence = await self._presence.get(agent_id)
        if presence.state is not AgentState.RINGING or presence.call_sid != call_sid:
            # The claim was undone meanwhile: back into the queue.
            await self._requeue(call_sid)
            return CallDecision(DecisionKind.ENQUEUE)
        async with self._uow() as uow:
            return await self._offers.connect(uow.session, agent_id, say=[])

    async def queue_wait(self, wait: QueueWait) -> list[str]:
        # Twilio asks for hold music only for a caller in its queue.
        await self._take_back_stale_offer(wait.call_sid)
        return [self._policy.queue_message.format(position=wait.position)]

    async def queue_finished(self, outcome: QueueOutcome) -> CallDecision:
        return CallDecision(DecisionKind.HANG_UP)
