"""Sending what the outbox holds: claim a queued text, hand it to the gateway, record the answer.

Each step is its own transaction, so a crash between them loses nothing and sends nothing twice:
a claimed text is never claimed again. What happens to a text the gateway did not take depends
on whether the request can have reached it:

- certainly not (no connection was made, or Twilio asked to slow down): back to the queue, tried
  again by the sweep after a wait that doubles (:class:`~crm_core.services.sms_outbound.SendRetry`);
- maybe (no answer, a connection lost after sending, a 5xx): "unconfirmed", never resent blindly
  and never dropped. :meth:`SmsOutbox.reconcile` asks the gateway what it holds: a text it has is
  settled with its MessageSid and status; one it still does not have long after is sent again.
  A text claimed by a sender that stopped mid-send becomes unconfirmed the same way;
- refused (an error code): failed, with the code.

These are the outbox's life cycle (:mod:`crm_core.outbox`): its claim, its reading of the
provider's :class:`~crm_core.errors.DeliveryError`, its retry rule, and its two named steps, the
opt-out check (:class:`~crm_core.services.sms_outbound.SmsOptOuts`) and a throttle per sending
number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from crm_core.clock import SystemClock
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import DeliveryError
from crm_core.models import OutboxEntry, SmsMessage
from crm_core.outbox.rules import Outcome, outcome_of
from crm_core.outbox.steps import UNLIMITED, Suppression, Throttle, pace
from crm_core.ports import Clock, SmsSender
from crm_core.services import sms_outbound as outbound
from crm_core.services import sms_reconcile as reconciling
from crm_core.services.sms_outbound import OPT_OUTS, SendRetry
from crm_core.services.sms_reconcile import Reconcile
from crm_core.services.sms_types import SmsLookup

log = logging.getLogger(__name__)

SYSTEM_CLOCK = SystemClock()

# Twilio's clock and ours: a text it created up to this long before our claim is still ours.
CLOCK_SLACK = timedelta(seconds=60)


class SmsOutbox:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sender: SmsSender,
        status_callback: Callable[[int], str],
        *,
        retry: SendRetry | None = None,
        lookup: SmsLookup | None = None,
        reconcile_policy: Reconcile | None = None,
        suppression: Suppression[SmsMessage] = OPT_OUTS,
        throttle: Throttle = UNLIMITED,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._status_callback = status_callback
        self._retry = retry or SendRetry()
        self._lookup = lookup
        self._reconcile = reconcile_policy or Reconcile()
        self._suppression = suppression
        self._throttle = throttle
        self._clock = clock

    def _now(self, now: datetime | None = None) -> datetime:
        """``now`` when given (a sweep's time, for every text it sends), else the clock's."""
        return now if now is not None else self._clock.now()

    async def send(self, message_id: int, now: datetime | None = None) -> bool:
        """Send one queued text; False when it was not sent now (taken, suppressed, refused, or
        to be tried again later)."""
        claimed_at = self._clock.now()
        async with self._uow() as uow:
            claimed = await outbound.claim(uow, message_id, now=claimed_at, suppression=self._suppression)
            await uow.commit()
        if claimed is None:
            return False
        row = claimed.row
        try:
            await pace(self._throttle, claimed.sender_key)
        except asyncio.CancelledError:
            # A shutdown before the hand-over began: any instance may send it now.
            await asyncio.shield(self._release(message_id, claimed_at))
            raise
        try:
            sid = await self._sender.send_sms(
                to=row.to_number,
                from_=row.from_number,
                body=row.body,
                status_callback=self._status_callback(row.id),
            )
        except DeliveryError as exc:
            await self._not_taken(message_id, exc, self._now(now))
            return False
        except asyncio.CancelledError:
            # A shutdown mid-request: it may have reached Twilio, so it is asked about, not resent.
            await asyncio.shield(self._stopped_mid_send(message_id))
            raise
        async with self._uow() as uow:
            await outbound.record_handed_over(uow, message_id, sid, self._clock.now())
            await uow.commit()
        return True

    async def _release(self, message_id: int, claimed_at: datetime) -> None:
        async with self._uow() as uow:
            if await outbound.release_claim(uow, message_id, claimed_at):
                log.info("text %s given back to the queue at shutdown", message_id)
            await uow.commit()

    async def _stopped_mid_send(self, message_id: int) -> None:
        async with self._uow() as uow:
            await outbound.record_unconfirmed(
                uow,
                message_id,
                "stopped while handing it over; asking Twilio whether it left",
                self._clock.now(),
            )
            await uow.commit()

    async def _not_taken(self, message_id: int, exc: DeliveryError, now: datetime) -> None:
        outcome = outcome_of(exc)
        async with self._uow() as uow:
            if outcome is Outcome.RETRY:
                await outbound.retry_later(uow, message_id, str(exc), self._retry, now)
            elif outcome is Outcome.UNCONFIRMED:
                await outbound.record_unconfirmed(uow, message_id, str(exc), self._clock.now())
            else:
                await outbound.record_refused(uow, message_id, exc.code, str(exc))
            await uow.commit()
        log.warning("text %s not sent: %s", message_id, exc)

    async def send_waiting(self, limit: int = 100, now: datetime | None = None) -> int:
        """Send every queued text that is due (after a restart, or one that could not be sent)."""
        now = self._now(now)
        async with self._uow() as uow:
            ids = await outbound.waiting_ids(uow.session, limit, now)
        sent = 0
        for message_id in ids:
            sent += await self.send(message_id, now)
        return sent

    async def reconcile(self, now: datetime | None = None) -> int:
        """Settle unconfirmed texts by asking the gateway; returns how many were settled (found,
        or put back in the queue because the gateway has no record of them)."""
        now = self._now(now)
        async with self._uow() as uow:
            await reconciling.unconfirm_stale_claims(uow, self._reconcile, now)
            await uow.commit()
        if self._lookup is None:
            return 0
        async with self._uow() as uow:
            rows = await reconciling.unconfirmed_to_settle(uow.session, self._reconcile, now)
        settled = 0
        for row, entry in rows:
            try:
                settled += await self._settle(row, entry, self._lookup, now)
            except DeliveryError as exc:
                log.warning("could not ask about unconfirmed text %s: %s", row.id, exc)
                if exc.retryable:
                    break  # the gateway is unreachable: the next sweep asks again
            except Exception:
                # One text's trouble (a malformed answer, a conflict) does not hold back the
                # others; it stays unconfirmed and is asked about again at the next sweep.
                log.exception("could not settle unconfirmed text %s", row.id)
        return settled

    async def _settle(self, row: SmsMessage, entry: OutboxEntry, lookup: SmsLookup, now: datetime) -> bool:
        claimed_at = entry.claimed_at or row.created_at
        candidates = await lookup.find_sms(
            to=row.to_number, from_=row.from_number, body=row.body, created_after=claimed_at - CLOCK_SLACK
        )
        async with self._uow() as uow:
            if candidates and await reconciling.settle_found(uow, row.id, candidates, now) is not None:
                await uow.commit()
                log.info("unconfirmed text %s found at the gateway", row.id)
                return True
            settled = await reconciling.settle_absent(uow, row.id, self._reconcile, now)
            await uow.commit()
        if settled:
            resent = entry.resends < self._reconcile.max_resends
            log.warning(
                "unconfirmed text %s never reached the gateway; %s",
                row.id,
                "sending it again" if resent else "failed, not sent again",
            )
        return settled
