"""Calls whose news was lost: asked of Twilio and closed with their real outcome.

A status callback can be lost (Twilio gave up on a webhook that failed, an instance stopped while
answering it). Without it a call would stay ringing or queued for ever: listed among the live
calls, its agent held, its caller offered to agent after agent. :class:`LostCalls` runs on a timer:
the calls with no news for a while (a short wait for calls ringing, queued or offered, a longer
one for calls in progress) are fetched from Twilio's REST API, and a call that is over is closed
as its final status callback would have closed it (its outcome and duration, its agent freed, a
callback ticket when nobody answered, the usual events). It also ends at once a call Twilio says
is not in progress (21220) or does not know (20404) when the queue tries to offer it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from contact_center.voice.progress import CallProgress
from crm_core.db import UnitOfWorkFactory
from crm_core.errors import GatewayError
from crm_core.models import Interaction
from crm_core.ports import CallLookup, Clock
from crm_core.rules.call_status import TERMINAL
from crm_core.types import Channel
from crm_core.voice import CallRecord, CallStatus, CallStatusUpdate

log = logging.getLogger(__name__)

NOT_FOUND = 20404  # Twilio's "no such resource"
# Stages of a call under way (an agent or a voicemail recording it): news comes rarely.
UNDER_WAY = frozenset({CallStatus.IN_PROGRESS.value, "voicemail"})
_TERMINAL = frozenset(status.value for status in TERMINAL)


@dataclass(frozen=True, slots=True)
class QuietLimits:
    """How long a call may go without news before Twilio is asked about it."""

    ringing_seconds: float = 120.0
    """Ringing, queued or offered to an agent."""
    in_progress_seconds: float = 300.0
    """In progress (talking to an agent, leaving a message)."""
    batch: int = 50
    """Calls asked about per run, the longest quiet first."""


def last_news(call: Interaction) -> datetime:
    """When the call was last heard of: its start, queueing, latest offer or answer."""
    stamps = [call.started_at, call.queued_at, call.offered_at, call.answered_at]
    return max(stamp for stamp in stamps if stamp is not None)


class LostCalls:
    """Settles calls whose final status never came, by asking Twilio."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        progress: CallProgress,
        lookup: CallLookup | None,
        limits: QuietLimits,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._progress = progress
        self._lookup = lookup
        self._limits = limits
        self._clock = clock
        self._asked: dict[str, datetime] = {}  # CallSid -> when Twilio last said it was still on

    async def settle_quiet_calls(self) -> int:
        """Ask Twilio about every call quiet for too long; returns how many were closed."""
        closed = 0
        for call_sid in await self._quiet_calls():
            try:
                closed += await self.settle(call_sid)
            except GatewayError as exc:
                log.warning("could not ask Twilio about call %s: %s", call_sid, exc)
                break  # Twilio cannot be reached: the next run asks again
        return closed

    async def _quiet_calls(self) -> list[str]:
        now = self._clock.now()
        shortest = min(self._limits.ringing_seconds, self._limits.in_progress_seconds)
        async with self._uow() as uow:
            rows = await uow.session.scalars(
                select(Interaction)
                .where(
                    Interaction.channel == Channel.VOICE,
                    Interaction.ended_at.is_(None),
                    Interaction.external_id.is_not(None),
                    Interaction.status.not_in(_TERMINAL),
                    Interaction.started_at <= now - timedelta(seconds=shortest),
                )
                .order_by(Interaction.started_at, Interaction.id)
            )
            calls = list(rows)
        quiet: list[tuple[datetime, str]] = []
        for call in calls:
            limit = (
                self._limits.in_progress_seconds if call.status in UNDER_WAY else self._limits.ringing_seconds
            )
            heard = max(last_news(call), self._asked.get(str(call.external_id), call.started_at))
            if (now - heard).total_seconds() >= limit:
                quiet.append((heard, str(call.external_id)))
        open_sids = {str(call.external_id) for call in calls}
        self._asked = {sid: at for sid, at in self._asked.items() if sid in open_sids}
        return [sid for _, sid in sorted(quiet)[: self._limits.batch]]

    async def settle(self, call_sid: str) -> bool:
        """Ask Twilio how the call stands and apply it; True when the call was closed. Raises
        :class:`GatewayError` when Twilio cannot answer."""
        if self._lookup is None:
            return False
        record = await self._lookup.fetch_call(call_sid)
        if record is None:
            log.warning("call %s is unknown to Twilio: closed as failed", call_sid)
            record = CallRecord(call_sid, CallStatus.FAILED)
        return await self._apply(record)

    async def settle_quietly(self, call_sid: str) -> None:
        """:meth:`settle`, in the background: a failure is logged (the timer asks again)."""
        try:
            await self.settle(call_sid)
        except GatewayError as exc:
            log.warning("could not ask Twilio about call %s: %s", call_sid, exc)

    async def call_is_over(self, call_sid: str, code: int | None) -> None:
        """Twilio refused to steer the call because it is over (``code`` 21220 or 20404): close it
        with its real outcome when Twilio tells it, else as ended (or failed, when unknown)."""
        record: CallRecord | None = None
        try:
            record = None if self._lookup is None else await self._lookup.fetch_call(call_sid)
        except GatewayError as exc:
            log.warning("could not ask Twilio how call %s ended: %s", call_sid, exc)
        if record is None or record.status not in TERMINAL:
            status = CallStatus.FAILED if code == NOT_FOUND else CallStatus.COMPLETED
            record = CallRecord(call_sid, status)
        await self._apply(record)

    async def _apply(self, record: CallRecord) -> bool:
        over = record.status in TERMINAL
        if not over:
            self._asked[record.call_sid] = self._clock.now()
        update = CallStatusUpdate(
            call_sid=record.call_sid,
            status=record.status,
            duration_seconds=record.duration_seconds if over else None,
            timestamp=(record.end_time or self._clock.now()) if over else None,
            answered_by=record.answered_by,
        )
        await self._progress.call_status(update)
        if over:
            self._asked.pop(record.call_sid, None)
            log.info("call %s had no news: Twilio says it ended %s", record.call_sid, record.status.value)
        return over
