"""SLA clocks on tickets: which policy applies, the due times it gives, and when an escalation
level may next fire (``ticket_slas.next_check_at``, what the escalation pass scans).

Targets count business time in the policy's calendar (always open without one). The clock pauses
while a ticket is pending (waiting on the customer) or resolved, and resumes when it opens again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import InvalidInput
from crm_core.models import (
    Customer,
    EscalationFiring,
    EscalationRule,
    ServiceCalendar,
    SlaPolicyRecord,
    SlaTarget,
    Ticket,
    TicketSla,
)
from crm_core.rules.business_time import BusinessCalendar, Pause, calendar_from_text
from crm_core.rules.ticket_status import TicketStatus

VIP_TAG = "vip"
RUNNING = frozenset({TicketStatus.NEW, TicketStatus.OPEN})


def calendar_of(row: ServiceCalendar | None) -> BusinessCalendar:
    if row is None:
        return BusinessCalendar.always_open()
    return calendar_from_text(row.timezone, row.weekly, [date.fromisoformat(d) for d in row.holidays])


def policy_matches(policy: SlaPolicyRecord, ticket: Ticket, customer: Customer | None) -> bool:
    """Every condition the policy sets holds for the ticket (unset conditions match anything)."""
    if not policy.active:
        return False
    if policy.priority is not None and policy.priority != ticket.priority:
        return False
    if policy.channel is not None and policy.channel != ticket.source_channel:
        return False
    if policy.team_id is not None and policy.team_id != ticket.team_id:
        return False
    if policy.segment is not None and (customer is None or customer.segment != policy.segment):
        return False
    if policy.vip is not None:
        is_vip = customer is not None and VIP_TAG in {t.casefold() for t in customer.tags}
        if is_vip != policy.vip:
            return False
    return True


def target_minutes(policy: SlaPolicyRecord, target: SlaTarget) -> int | None:
    return {
        SlaTarget.FIRST_RESPONSE: policy.first_response_minutes,
        SlaTarget.NEXT_RESPONSE: policy.next_response_minutes,
        SlaTarget.RESOLUTION: policy.resolution_minutes,
    }[target]


@dataclass(slots=True)
class SlaBook:
    """Policies (in order), their calendars and escalation rules, loaded once per unit of work."""

    policies: list[SlaPolicyRecord]
    calendars: dict[int, BusinessCalendar]
    rules: dict[int, list[EscalationRule]] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> SlaBook:
        policies = list(
            await session.scalars(
                select(SlaPolicyRecord)
                .where(SlaPolicyRecord.active.is_(True))
                .order_by(SlaPolicyRecord.position, SlaPolicyRecord.id)
            )
        )
        if not policies:
            return cls([], {})
        calendars = {row.id: calendar_of(row) for row in await session.scalars(select(ServiceCalendar))}
        rules: dict[int, list[EscalationRule]] = {}
        for rule in await session.scalars(select(EscalationRule).order_by(EscalationRule.level)):
            rules.setdefault(rule.policy_id, []).append(rule)
        return cls(policies, calendars, rules)

    def reads_customers(self) -> bool:
        """Whether choosing a policy needs the customer (a segment or VIP condition)."""
        return any(p.segment is not None or p.vip is not None for p in self.policies)

    def choose(self, ticket: Ticket, customer: Customer | None) -> SlaPolicyRecord | None:
        return next((p for p in self.policies if policy_matches(p, ticket, customer)), None)

    def policy(self, policy_id: int | None) -> SlaPolicyRecord | None:
        return next((p for p in self.policies if p.id == policy_id), None)

    def calendar(self, policy: SlaPolicyRecord) -> BusinessCalendar:
        if policy.calendar_id is None:
            return BusinessCalendar.always_open()
        return self.calendars.get(policy.calendar_id) or BusinessCalendar.always_open()


def pauses_of(sla: TicketSla) -> list[Pause]:
    pauses: list[Pause] = []
    for text in sla.pauses:
        start, _, end = text.partition("/")
        pauses.append((datetime.fromisoformat(start), datetime.fromisoformat(end)))
    if sla.paused_since is not None:
        pauses.append((sla.paused_since, None))
    return pauses


def follow_status(sla: TicketSla, status: TicketStatus, now: datetime) -> None:
    """Pause the clock unless the ticket is new or open; resume it (closing the pause) when it is."""
    if status in RUNNING:
        if sla.paused_since is not None:
            if now > sla.paused_since:
                sla.pauses = [*sla.pauses, f"{sla.paused_since.isoformat()}/{now.isoformat()}"]
            sla.paused_since = None
    elif sla.paused_since is None:
        sla.paused_since = now


def target_start(sla: TicketSla, target: SlaTarget) -> datetime | None:
    return sla.next_response_since if target is SlaTarget.NEXT_RESPONSE else sla.started_at


def due_at(sla: TicketSla, target: SlaTarget) -> datetime | None:
    return {
        SlaTarget.FIRST_RESPONSE: sla.first_response_due_at,
        SlaTarget.NEXT_RESPONSE: sla.next_response_due_at,
        SlaTarget.RESOLUTION: sla.resolution_due_at,
    }[target]


def _added(
    calendar: BusinessCalendar, start: datetime, amount: timedelta, pauses: list[Pause]
) -> datetime | None:
    """``calendar.add``, or None for a calendar closed for years: no due time rather than a
    ticket that cannot be opened."""
    try:
        return calendar.add(start, amount, pauses)
    except InvalidInput:
        return None


def fire_moment(
    rule: EscalationRule, sla: TicketSla, policy: SlaPolicyRecord, calendar: BusinessCalendar
) -> datetime | None:
    """When the rule's level is due: a share of the target's business time, or its due time plus
    a wall-clock delay; ``None`` while the target is met, not running or paused before it."""
    due = due_at(sla, rule.target)
    minutes, start = target_minutes(policy, rule.target), target_start(sla, rule.target)
    if due is None or minutes is None or start is None:
        return None
    if rule.percent is not None:
        return _added(calendar, start, timedelta(minutes=minutes * rule.percent / 100), pauses_of(sla))
    return due + timedelta(minutes=rule.after_breach_minutes or 0)


def compute(
    sla: TicketSla,
    ticket: Ticket,
    policy: SlaPolicyRecord | None,
    calendar: BusinessCalendar,
    rules: Sequence[EscalationRule],
    fired: set[int],
) -> None:
    """Due times and ``next_check_at`` from the policy, the ticket's state and the pauses."""
    sla.policy_id = policy.id if policy is not None else None
    pauses = pauses_of(sla)
    active = ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED)

    def due(target: SlaTarget, start: datetime | None, wanted: bool) -> datetime | None:
        minutes = target_minutes(policy, target) if policy is not None else None
        if not (wanted and active) or minutes is None or start is None:
            return None
        return _added(calendar, start, timedelta(minutes=minutes), pauses)

    sla.first_response_due_at = due(
        SlaTarget.FIRST_RESPONSE, sla.started_at, ticket.first_responded_at is None
    )
    sla.next_response_due_at = due(SlaTarget.NEXT_RESPONSE, sla.next_response_since, True)
    sla.resolution_due_at = due(SlaTarget.RESOLUTION, sla.started_at, True)
    moments = (
        [fire_moment(rule, sla, policy, calendar) for rule in rules if rule.id not in fired]
        if policy is not None
        else []
    )
    sla.next_check_at = min((m for m in moments if m is not None), default=None)
    ticket.first_response_due_at = sla.first_response_due_at
    ticket.resolution_due_at = sla.resolution_due_at


async def fired_rules(session: AsyncSession, ticket_ids: Sequence[int]) -> dict[int, set[int]]:
    rows = await session.execute(
        select(EscalationFiring.ticket_id, EscalationFiring.rule_id).where(
            EscalationFiring.ticket_id.in_(ticket_ids)
        )
    )
    fired: dict[int, set[int]] = {}
    for ticket_id, rule_id in rows:
        fired.setdefault(ticket_id, set()).add(rule_id)
    return fired


async def track_ticket(
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    *,
    book: SlaBook | None = None,
    sla: TicketSla | None = None,
    fired: set[int] | None = None,
) -> TicketSla | None:
    """Start or update the ticket's SLA clock after it opened or its priority, channel, team,
    customer or status changed: follow the status (pause/resume), choose the policy again and
    recompute the due times. The caller's unit of work commits.

    Without any SLA policy a ticket keeps the due times its opening gave it (no clock is kept)."""
    book = book or await SlaBook.load(session)
    if sla is None:
        sla = await session.get(TicketSla, ticket.id)
    if sla is None:
        if not book.policies:
            return None
        sla = TicketSla(ticket_id=ticket.id, started_at=ticket.created_at or now, pauses=[])
        session.add(sla)
    follow_status(sla, ticket.status, now)
    customer = await session.get(Customer, ticket.customer_id)
    policy = book.choose(ticket, customer)
    if fired is None:
        fired = (await fired_rules(session, [ticket.id])).get(ticket.id, set())
    rules = book.rules.get(policy.id, []) if policy is not None else []
    calendar = book.calendar(policy) if policy is not None else BusinessCalendar.always_open()
    compute(sla, ticket, policy, calendar, rules, fired)
    return sla


async def track_new_tickets(session: AsyncSession, tickets: Sequence[Ticket], now: datetime) -> int:
    """SLA clocks for tickets opened together (a batch of mail): the policies read once."""
    if not tickets:
        return 0
    book = await SlaBook.load(session)
    if not book.policies:
        return 0
    customers: dict[int, Customer] = {}
    if book.reads_customers():
        wanted = {t.customer_id for t in tickets}
        customers = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(wanted)))}
    for ticket in tickets:
        sla = TicketSla(ticket_id=ticket.id, started_at=ticket.created_at or now, pauses=[])
        follow_status(sla, ticket.status, now)
        policy = book.choose(ticket, customers.get(ticket.customer_id))
        rules = book.rules.get(policy.id, []) if policy is not None else []
        calendar = book.calendar(policy) if policy is not None else BusinessCalendar.always_open()
        compute(sla, ticket, policy, calendar, rules, set())
        session.add(sla)
    return len(tickets)


async def customer_wrote(session: AsyncSession, ticket: Ticket, at: datetime) -> TicketSla | None:
    """The customer is waiting for an answer from ``at`` (unless already waiting, or still
    waiting for the first response, which that target covers)."""
    sla = await session.get(TicketSla, ticket.id)
    if sla is not None and sla.next_response_since is None and ticket.first_responded_at is not None:
        sla.next_response_since = at
    return await track_ticket(session, ticket, at, sla=sla)


async def agent_replied(session: AsyncSession, ticket: Ticket, at: datetime) -> TicketSla | None:
    """An agent answered: the next-response clock stops until the customer writes again."""
    sla = await session.get(TicketSla, ticket.id)
    if sla is not None:
        sla.next_response_since = None
    return await track_ticket(session, ticket, at, sla=sla)


async def customers_wrote(session: AsyncSession, tickets: Sequence[Ticket], at: datetime) -> int:
    """:func:`customer_wrote` for the active tickets customers wrote on together (a batch of
    mail): one query when no clock starts, else the policies, customers and fired levels read
    once. Returns how many next-response clocks started."""
    answered = {t.id: t for t in tickets if t.first_responded_at is not None and t.status in RUNNING}
    if not answered:
        return 0
    slas = list(
        await session.scalars(
            select(TicketSla).where(
                TicketSla.ticket_id.in_(answered), TicketSla.next_response_since.is_(None)
            )
        )
    )
    if not slas:
        return 0
    book = await SlaBook.load(session)
    fired = await fired_rules(session, [s.ticket_id for s in slas])
    customers: dict[int, Customer] = {}
    if book.reads_customers():
        wanted = {answered[s.ticket_id].customer_id for s in slas}
        customers = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(wanted)))}
    for sla in slas:
        ticket = answered[sla.ticket_id]
        sla.next_response_since = at
        follow_status(sla, ticket.status, at)
        policy = book.choose(ticket, customers.get(ticket.customer_id))
        rules = book.rules.get(policy.id, []) if policy is not None else []
        calendar = book.calendar(policy) if policy is not None else BusinessCalendar.always_open()
        compute(sla, ticket, policy, calendar, rules, fired.get(ticket.id, set()))
    return len(slas)
