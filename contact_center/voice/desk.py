"""The call desk: the application's answer to every voice webhook (implements crm_core's VoiceCalls).

An inbound call resolves the caller, is logged keyed by CallSid, is routed to an agent (sticky owner
first, then the longest idle), and pops the customer card on that agent's socket after commit
(``inbound``). With nobody free the caller waits in the queue (``queue``); outside business hours
they may leave a voicemail. A call that ends without reaching an agent opens a callback ticket (or
joins the open one) (``progress``, ``tickets``). What the parts share is in ``offers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contact_center.routing.presence import PresenceStore
from contact_center.routing.roster import RosterCache
from contact_center.voice.inbound import Callers, InboundCalls
from contact_center.voice.offers import CallOffers
from contact_center.voice.progress import CallProgress
from contact_center.voice.queue import CallQueue, NobodyFree, Spawn
from contact_center.voice.reconcile import LostCalls, QuietLimits
from contact_center.voice.tickets import CallTickets
from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.ports import CallControl, CallLookup, Clock
from crm_core.rules.business_hours import BusinessHours
from crm_core.services.tickets import SlaPolicy
from crm_core.sql import AutocommitConnections
from crm_core.voice import (
    CallDecision,
    CallStatusUpdate,
    DialOutcome,
    InboundCall,
    QueueOutcome,
    QueueWait,
    Recording,
)


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
    """Implements :class:`crm_core.ports.VoiceCalls` on the CRM core, presence and routing.

    ``spawn`` runs background work (a queue run a webhook does not wait for): the runtime's jobs.
    ``free_at`` tells routing when a wrap-up ends (it then offers the agent: to the queue first).
    ``clock`` is the time the desk reads (the runtime's; the real one by default).
    ``lookup`` asks Twilio how a call stands, to close calls whose final news was lost
    (:meth:`settle_quiet_calls`, after the ``quiet`` limits).
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        presence: PresenceStore,
        policy: CallPolicy,
        control: CallControl,
        connect_url: Callable[[int], str],
        spawn: Spawn,
        free_at: Callable[[datetime], None],
        clock: Clock | None = None,
        lookup: CallLookup | None = None,
        quiet: QuietLimits | None = None,
    ) -> None:
        clock = clock or SystemClock()
        self._connections = AutocommitConnections(uow.engine)
        roster = RosterCache(uow.engine)
        self._nobody_free = nobody_free = NobodyFree(clock)
        offers = CallOffers(uow, presence, policy, roster, clock)
        callers = Callers(policy, clock)
        self._tickets = CallTickets(uow, policy, clock)
        self._progress = CallProgress(
            uow,
            presence,
            policy,
            self._connections,
            offers,
            callers,
            self._tickets,
            nobody_free,
            free_at,
            clock,
        )
        self.lost_calls = LostCalls(uow, self._progress, lookup, quiet or QuietLimits(), clock)
        self._queue = CallQueue(
            uow,
            presence,
            policy,
            control,
            connect_url,
            offers,
            nobody_free,
            self._connections,
            spawn,
            clock,
            self.lost_calls,
        )
        self._inbound = InboundCalls(
            uow,
            presence,
            policy,
            roster,
            self._connections,
            offers,
            callers,
            nobody_free,
            self._queue.run_the_queue,
            clock,
        )

    async def close(self) -> None:
        await self._inbound.close()
        await self._connections.close()

    async def inbound_call(self, call: InboundCall) -> CallDecision:
        return await self._inbound.inbound_call(call)

    async def call_status(self, update: CallStatusUpdate) -> None:
        await self._progress.call_status(update)

    async def agent_leg_status(self, agent_id: int, parent_call_sid: str, update: CallStatusUpdate) -> None:
        await self._progress.agent_leg_status(agent_id, parent_call_sid, update)

    async def dial_finished(self, outcome: DialOutcome) -> CallDecision:
        return await self._progress.dial_finished(outcome)

    async def connect_waiting_callers(self) -> int:
        """Offer the longest-waiting queued callers to the agents who are free now."""
        return await self._queue.connect_waiting_callers()

    async def settle_quiet_calls(self) -> int:
        """Close the calls whose final status never came, as Twilio says they ended."""
        return await self.lost_calls.settle_quiet_calls()

    @property
    def callers_may_wait(self) -> bool:
        """Nobody was free at the last claim or queue run here (else nobody waited then)."""
        return self._nobody_free.stands

    async def connect_agent(self, call_sid: str, agent_id: int) -> CallDecision:
        return await self._queue.connect_agent(call_sid, agent_id)

    async def queue_wait(self, wait: QueueWait) -> list[str]:
        return await self._queue.queue_wait(wait)

    async def queue_finished(self, outcome: QueueOutcome) -> CallDecision:
        return await self._queue.queue_finished(outcome)

    async def recording_ready(self, recording: Recording) -> None:
        await self._tickets.recording_ready(recording)
