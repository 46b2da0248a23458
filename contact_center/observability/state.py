"""Figures read at scrape time: the inbound call queue, agents by state, the outboxes, the
mailboxes, the database pool. One cheap query each, reused for ``metrics.cache_seconds``, so a
scrape every second costs what one every few seconds does.

:class:`StateCollector` is a Prometheus ``Collector``: ``collect`` is synchronous, so the
figures are read first (:meth:`StateCollector.refresh`, awaited by the ``/metrics`` handler) and
``collect`` only reports what was read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, literal_column, select

from contact_center.appkeys import Runtime
from contact_center.routing.presence import AgentState
from contact_center.routing.roster import load_roster
from crm_core.models import EmailMessage, Interaction, SmsMessage
from crm_core.models.email import EmailStatus
from crm_core.services.sms_outbound import QUEUED, UNCONFIRMED
from crm_core.types import Channel, Direction
from crm_core.voice import QUEUED_FOR_AGENT

log = logging.getLogger(__name__)

# Texts not yet handed over (no MessageSid): waiting, being handed over, or unconfirmed.
SMS_PENDING = (QUEUED, UNCONFIRMED)
EMAIL_PENDING = (EmailStatus.QUEUED, EmailStatus.SENDING)


class WatchedMailbox(Protocol):
    """What the IMAP watcher tells about itself (``channels.email.imap.MailboxWatcher``)."""

    @property
    def name(self) -> str: ...

    state: str
    failures: int
    ingested: int
    last_error: str | None
    last_poll_at: float | None


@dataclass(slots=True)
class Snapshot:
    queue_length: int = 0
    queue_oldest: datetime | None = None
    agents: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    read_at: float | None = None  # the runtime clock's monotonic seconds; None: never
    ok: bool = False


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:  # SQLite hands naive UTC times back
        then = then.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - then).total_seconds())


class StateCollector(Collector):
    def __init__(
        self,
        runtime: Callable[[], Runtime | None],
        mailboxes: Callable[[], Sequence[WatchedMailbox]],
        cache_seconds: float,
    ) -> None:
        self._runtime = runtime
        self._mailboxes = mailboxes
        self._cache_seconds = cache_seconds
        self._snapshot = Snapshot()
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the figures again unless they were read less than ``cache_seconds`` ago."""
        runtime = self._runtime()
        if runtime is None:
            return
        async with self._lock:
            clock = runtime.clock
            read_at = self._snapshot.read_at
            if read_at is not None and clock.monotonic() - read_at < self._cache_seconds:
                return
            snapshot = Snapshot()
            try:
                await self._read(runtime, snapshot)
                snapshot.ok = True
            except Exception as exc:  # a scrape must answer even when the database does not
                log.warning("metrics: could not read the service's state: %s", exc)
                snapshot = self._snapshot
                snapshot.ok = False
            snapshot.read_at = clock.monotonic()
            self._snapshot = snapshot

    async def _read(self, runtime: Runtime, snapshot: Snapshot) -> None:
        async with runtime.uow() as uow:
            session = uow.session
            queue = await session.execute(
                select(func.count(), func.min(func.coalesce(Interaction.queued_at, Interaction.started_at)))
                # A literal, so PostgreSQL matches the partial index ix_interactions_waiting.
                .where(
                    Interaction.status == literal_column(f"'{QUEUED_FOR_AGENT}'"),
                    Interaction.channel == Channel.VOICE,
                )
            )
            snapshot.queue_length, snapshot.queue_oldest = queue.one()
            sms = await session.execute(
                select(func.count(), func.min(SmsMessage.created_at)).where(
                    SmsMessage.direction == Direction.OUTBOUND,
                    SmsMessage.status.in_(SMS_PENDING),
                    SmsMessage.message_sid.is_(None),
                )
            )
            email = await session.execute(
                select(func.count(), func.min(EmailMessage.created_at)).where(
                    EmailMessage.status.in_(EMAIL_PENDING)
                )
            )
            snapshot.outbox = {"sms": tuple(sms.one()), "email": tuple(email.one())}
            roster = await load_roster(session)
        presences = await runtime.presence.get_many(roster.agent_ids)
        now = runtime.clock.now()
        counts = dict.fromkeys((str(s) for s in AgentState), 0)
        for agent_id in roster.agent_ids:
            presence = presences.get(agent_id)
            state = presence.at(now).state if presence is not None else AgentState.OFFLINE
            counts[str(state)] += 1
        snapshot.agents = counts

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        snapshot = self._snapshot
        now = runtime.clock.now() if runtime is not None else None
        yield GaugeMetricFamily(
            "contact_center_state_read_ok",
            "1 when the last read of queues, outboxes and agents succeeded, 0 when it failed",
            value=1.0 if snapshot.ok else 0.0,
        )
        if now is not None:
            yield GaugeMetricFamily(
                "contact_center_call_queue_length",
                "Callers waiting for an agent",
                value=snapshot.queue_length,
            )
            yield GaugeMetricFamily(
                "contact_center_call_queue_oldest_wait_seconds",
                "How long the longest-waiting caller has waited (0: nobody waits)",
                value=_age(now, snapshot.queue_oldest) if snapshot.queue_length else 0.0,
            )
            agents = GaugeMetricFamily("contact_center_agents", "Active agents by state", labels=["state"])
            for state, count in sorted(snapshot.agents.items()):
                agents.add_metric([state], count)
            yield agents
            depth = GaugeMetricFamily(
                "contact_center_outbox_messages",
                "Outbound messages not yet handed to the provider (queued, claimed, unconfirmed)",
                labels=["channel"],
            )
            oldest = GaugeMetricFamily(
                "contact_center_outbox_oldest_age_seconds",
                "Age of the oldest message not yet handed to the provider (0: none)",
                labels=["channel"],
            )
            for channel, (count, first) in sorted(snapshot.outbox.items()):
                depth.add_metric([channel], count)
                oldest.add_metric([channel], _age(now, first) if count else 0.0)
            yield depth
            yield oldest
            yield from self._pool(runtime)
        yield from self._imap()

    def _pool(self, runtime: Runtime | None) -> Iterator[Metric]:
        pool = runtime.uow.engine.pool if runtime is not None else None
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        if checked_out is None or size is None:
            return
        yield GaugeMetricFamily(
            "contact_center_db_pool_checked_out", "Database connections in use", value=checked_out()
        )
        yield GaugeMetricFamily(
            "contact_center_db_pool_size", "Database connections the pool keeps", value=size()
        )

    def _imap(self) -> Iterator[Metric]:
        mailboxes = self._mailboxes()
        if not mailboxes:
            return
        connected = GaugeMetricFamily(
            "contact_center_imap_connected", "1 while the mailbox's IMAP session is up", labels=["mailbox"]
        )
        since = GaugeMetricFamily(
            "contact_center_imap_seconds_since_last_poll",
            "Seconds since the mailbox was last looked at successfully (-1: never yet)",
            labels=["mailbox"],
        )
        failures = CounterMetricFamily(
            "contact_center_imap_failures", "IMAP sessions that ended in an error", labels=["mailbox"]
        )
        ingested = CounterMetricFamily(
            "contact_center_imap_ingested", "Messages stored from the mailbox", labels=["mailbox"]
        )
        wall = time.time()  # the watchers stamp their polls on the system's wall clock
        for watcher in mailboxes:
            name = watcher.name
            connected.add_metric([name], 1.0 if watcher.state in ("syncing", "idle", "polling") else 0.0)
            last = watcher.last_poll_at
            since.add_metric([name], max(0.0, wall - last) if last is not None else -1.0)
            failures.add_metric([name], watcher.failures)
            ingested.add_metric([name], watcher.ingested)
        yield from (connected, since, failures, ingested)
