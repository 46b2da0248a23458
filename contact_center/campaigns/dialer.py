"""The campaign dialer: once a tick, every running campaign this instance holds the lease of is
paced and dialled.

Each tick per campaign: take or renew its lease (one instance at a time; a stopped instance's
campaigns pass to another once its lease lapses), build the pacer's snapshot, ask the pacer how
many calls to place, claim that many numbers from the hopper, record each dial (with its
idempotency key) and commit, and only then place the calls, at the account's calls-per-second
rate shared by every instance. A dial whose hand-over to Twilio went unanswered keeps no call SID:
once it is a few seconds old it is settled by asking Twilio for calls to that number, adopting
the call found, else failing the dial (by the retry rules): a number is never dialled twice
blindly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update

from contact_center.campaigns import dialer_state
from contact_center.campaigns.campaign_calls import is_machine
from contact_center.campaigns.dialer_history import HistoryFeed
from contact_center.routing.presence import PresenceStore
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import (
    Campaign,
    CampaignAttempt,
    CampaignContact,
    CampaignMode,
    CampaignStatus,
    DialOutcome,
    MachineAction,
)
from crm_core.outbox.steps import Throttle
from crm_core.pacing.pacer import Pacer
from crm_core.ports import Clock
from crm_core.services import campaign_leases, hopper
from crm_core.services.campaign_attempts import record_attempt_outcome, start_attempt, window_counts
from crm_core.services.campaigns import profile_of
from crm_core.voice import CallRecord, CallStatus

log = logging.getLogger(__name__)

_QUIET_OUTCOMES = {
    CallStatus.BUSY: DialOutcome.BUSY,
    CallStatus.NO_ANSWER: DialOutcome.NO_ANSWER,
    CallStatus.FAILED: DialOutcome.FAILED,
    CallStatus.CANCELED: DialOutcome.FAILED,
}
THROTTLE_KEY = "campaign-calls"
"""The one throttle key of the account's outbound calls (all campaigns, all instances)."""


class CampaignCalls(Protocol):
    """What the dialer asks of the phone network (the Twilio gateway)."""

    async def place_campaign_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        amd_callback: str,
        machine_detection: str = "DetectMessageEnd",
        ring_seconds: int = 25,
    ) -> str: ...

    async def find_calls(self, *, to: str, from_: str, created_after: datetime) -> list[CallRecord]: ...

    async def fetch_call(self, call_sid: str) -> CallRecord | None: ...


class CampaignCallUrls(Protocol):
    def answer(self, attempt_id: int) -> str: ...
    def status(self, attempt_id: int) -> str: ...
    def amd(self, attempt_id: int) -> str: ...


@dataclass(frozen=True, slots=True)
class DialerPolicy:
    lease: timedelta = timedelta(seconds=5)
    settle_after: timedelta = timedelta(seconds=5)
    ring_seconds: int = 25
    wrap_up_seconds: float = 30.0
    max_calls_per_tick: int = 10
    """At most the calls the account's rate lets through in one tick: the pacer decides again
    at the next tick with those calls in flight, instead of queueing calls behind the rate."""
    quiet_after: timedelta = timedelta(seconds=120)
    """A dial still unsettled this long after it was placed, not with an agent, is asked of
    Twilio: its final callback may have been lost (or gone to an instance that stopped)."""


@dataclass(frozen=True, slots=True)
class _Dial:
    attempt_id: int
    to: str
    from_: str
    machine_detection: str


class CampaignDialer:
    """Paces and dials the running campaigns whose lease this instance holds."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        presence: PresenceStore,
        calls: CampaignCalls,
        urls: CampaignCallUrls,
        throttle: Throttle,
        policy: DialerPolicy,
        *,
        instance_id: str | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self._uow, self._clock, self._presence = uow, clock, presence
        self._calls, self._urls, self._throttle, self._policy = calls, urls, throttle, policy
        self.instance_id = instance_id or uuid.uuid4().hex
        self._pacer = pacer or Pacer()
        self._histories: dict[int, HistoryFeed] = {}
        self._held: set[int] = set()
        self._closing = False

    @property
    def held(self) -> frozenset[int]:
        """The campaigns this instance paces now."""
        return frozenset(self._held)

    async def tick(self) -> None:
        """One round: every running campaign whose lease this instance holds or takes."""
        if self._closing:
            return
        async with self._uow() as uow:
            running = list(
                await uow.session.scalars(
                    select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING)
                )
            )
        for campaign_id in running:
            if await self._lease(campaign_id):
                try:
                    await self._settle_unplaced(campaign_id)
                    await self._settle_quiet(campaign_id)
                    await self._pace(campaign_id)
                except Exception:
                    log.exception("campaign %s: the dialer's tick failed", campaign_id)
        self._held &= set(running)

    async def _lease(self, campaign_id: int) -> bool:
        if self._closing:  # shutting down: leases given back are not taken again
            return False
        now = self._clock.now()
        async with self._uow() as uow:
            mine = await campaign_leases.take(
                uow.session, campaign_id, self.instance_id, now, self._policy.lease
            )
            await uow.commit()
        if mine:
            if campaign_id not in self._held:
                log.info("campaign %s: paced by this instance (%s)", campaign_id, self.instance_id)
            self._held.add(campaign_id)
        else:
            self._held.discard(campaign_id)
            self._histories.pop(campaign_id, None)  # read afresh if this instance paces it again
        return mine

    async def release(self) -> None:
        """Hand back every lease held (shutdown): another instance resumes at once."""
        self._closing = True
        async with self._uow() as uow:
            await campaign_leases.give_up(uow.session, self._held, self.instance_id)
            await uow.commit()
        self._held.clear()

    async def _pace(self, campaign_id: int) -> None:
        now = self._clock.now()
        dials: list[_Dial] = []
        async with self._uow() as uow:
            session = uow.session
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status is not CampaignStatus.RUNNING:
                return
            if campaign.mode is CampaignMode.PREVIEW:
                return  # the agent places each call after reading the card
            if not hopper.in_schedule(campaign, now):
                return
            agent_ids = await dialer_state.working_agents(session, campaign_id)
            agents = await dialer_state.agent_snapshots(self._presence, agent_ids, campaign_id, now)
            in_flight = await dialer_state.calls_in_flight(session, campaign_id)
            profile = profile_of(campaign)
            window = await window_counts(session, campaign_id, now, profile)
            feed = self._histories.setdefault(campaign_id, HistoryFeed(self._policy.wrap_up_seconds))
            history = await feed.update(session, campaign_id, profile)
            snapshot = dialer_state.snapshot(campaign, agents, in_flight, window, history, now)
            decision = self._pacer.decide(snapshot)
            if decision.calls <= 0:
                return
            wanted = min(decision.calls, self._policy.max_calls_per_tick)
            claim = await hopper.claim_next(session, campaign, now, wanted)
            detection = "DetectMessageEnd" if campaign.machine_action is MachineAction.MESSAGE else "Enable"
            for claimed in claim.claimed:
                contact = claimed.contact
                attempt = await start_attempt(session, contact, now)
                attempt.dial_key = dialer_state.dial_key(campaign_id, contact.id, contact.attempts)
                dials.append(_Dial(attempt.id, contact.e164, campaign.caller_id, detection))
            await session.flush()
            await uow.commit()  # every dial is recorded before any call is placed
        for dial in dials:
            await self._place(dial)

    async def _place(self, dial: _Dial) -> None:
        wait = await self._throttle.acquire(THROTTLE_KEY)
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            sid = await self._calls.place_campaign_call(
                to=dial.to,
                from_=dial.from_,
                url=self._urls.answer(dial.attempt_id),
                status_callback=self._urls.status(dial.attempt_id),
                amd_callback=self._urls.amd(dial.attempt_id),
                machine_detection=dial.machine_detection,
                ring_seconds=self._policy.ring_seconds,
            )
        except GatewayError as exc:
            if exc.unconfirmed:
                log.warning("campaign dial %s unconfirmed (%s): settled later", dial.attempt_id, exc)
                return
            log.warning("campaign dial %s not placed: %s", dial.attempt_id, exc)
            await self._fail(dial.attempt_id)
            return
        await self.adopt(dial.attempt_id, sid)

    async def adopt(self, attempt_id: int, call_sid: str) -> None:
        """The dial's call SID, stored once (a status callback may have brought it first)."""
        async with self._uow() as uow:
            await uow.session.execute(
                update(CampaignAttempt)
                .where(CampaignAttempt.id == attempt_id, CampaignAttempt.call_sid.is_(None))
                .values(call_sid=call_sid)
            )
            await uow.commit()

    async def _fail(self, attempt_id: int) -> None:
        async with self._uow() as uow:
            await record_attempt_outcome(uow.session, attempt_id, DialOutcome.FAILED, self._clock.now())
            await uow.commit()

    async def _settle_quiet(self, campaign_id: int) -> None:
        """Dials placed long ago with no outcome and no agent: settled by the call as Twilio holds
        it once it has ended (a completed call nobody was joined to was a live answer abandoned,
        unless machine detection said machine)."""
        now = self._clock.now()
        async with self._uow() as uow:
            quiet = (
                await uow.session.execute(
                    select(CampaignAttempt.id, CampaignAttempt.call_sid).where(
                        CampaignAttempt.campaign_id == campaign_id,
                        CampaignAttempt.call_sid.is_not(None),
                        CampaignAttempt.outcome.is_(None),
                        CampaignAttempt.agent_id.is_(None),
                        CampaignAttempt.started_at <= now - self._policy.quiet_after,
                    )
                )
            ).all()
        for attempt_id, call_sid in quiet:
            assert call_sid is not None
            try:
                call = await self._calls.fetch_call(call_sid)
            except GatewayError as exc:
                log.warning("campaign dial %s: Twilio could not be asked (%s)", attempt_id, exc)
                continue
            outcome = _QUIET_OUTCOMES.get(call.status) if call is not None else DialOutcome.FAILED
            if call is not None and call.status is CallStatus.COMPLETED:
                outcome = DialOutcome.MACHINE if is_machine(call.answered_by) else DialOutcome.HUMAN
            if outcome is None:
                continue  # still ringing or talking: asked again next tick
            answered_at = (
                call.start_time if call is not None and call.status is CallStatus.COMPLETED else None
            )
            async with self._uow() as uow:
                await record_attempt_outcome(
                    uow.session,
                    attempt_id,
                    outcome,
                    self._clock.now(),
                    answered_at=answered_at,
                    answered_by=call.answered_by if call is not None else None,
                    abandoned=outcome is DialOutcome.HUMAN,
                )
                await uow.commit()
            log.info("campaign dial %s settled from Twilio: %s", attempt_id, outcome.value)

    async def _settle_unplaced(self, campaign_id: int) -> None:
        """Dials recorded a while ago with no call SID: adopt the call Twilio has, else fail them."""
        now = self._clock.now()
        async with self._uow() as uow:
            rows = (
                await uow.session.execute(
                    select(
                        CampaignAttempt.id,
                        CampaignAttempt.started_at,
                        CampaignContact.e164,
                        Campaign.caller_id,
                    )
                    .join(CampaignContact, CampaignContact.id == CampaignAttempt.contact_id)
                    .join(Campaign, Campaign.id == CampaignAttempt.campaign_id)
                    .where(
                        CampaignAttempt.campaign_id == campaign_id,
                        CampaignAttempt.call_sid.is_(None),
                        CampaignAttempt.outcome.is_(None),
                        CampaignAttempt.started_at <= now - self._policy.settle_after,
                    )
                )
            ).all()
        for attempt_id, started_at, to, caller_id in rows:
            wait = await self._throttle.acquire(THROTTLE_KEY)  # a lookup counts against the rate too
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                found = await self._calls.find_calls(
                    to=to, from_=caller_id, created_after=started_at - timedelta(seconds=2)
                )
            except GatewayError as exc:
                log.warning("campaign dial %s: Twilio could not be asked (%s)", attempt_id, exc)
                continue
            if found:
                log.info("campaign dial %s: adopted call %s found at Twilio", attempt_id, found[0].call_sid)
                await self.adopt(attempt_id, found[0].call_sid)
            else:
                log.info("campaign dial %s: no call at Twilio, failed", attempt_id)
                await self._fail(attempt_id)
