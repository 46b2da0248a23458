"""Choosing a ticket's SLA policy (first match in order; unset conditions match anything), the
clock following the ticket's status, and due times with pauses, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_core.models import Customer, EscalationRule, SlaPolicyRecord, SlaTarget, Ticket, TicketSla
from crm_core.rules.business_time import BusinessCalendar
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.sla import SlaBook, compute, fire_moment, follow_status, policy_matches
from crm_core.types import Channel, Priority

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def policy(pid: int, **conditions: object) -> SlaPolicyRecord:
    return SlaPolicyRecord(
        id=pid, name=f"p{pid}", position=pid, active=True, first_response_minutes=60, resolution_minutes=600,
        **conditions,
    )  # fmt: skip


def ticket(**fields: object) -> Ticket:
    values: dict[str, object] = {
        "id": 1, "number": 1001, "subject": "x", "status": TicketStatus.NEW, "priority": Priority.NORMAL,
        "customer_id": 7, "team_id": 3, "source_channel": Channel.EMAIL, "created_at": T0,
    }  # fmt: skip
    return Ticket(**(values | fields))


def customer(tags: list[str] | None = None, segment: str | None = None) -> Customer:
    return Customer(id=7, display_name="Ada", tags=tags or [], segment=segment)


def test_the_first_policy_in_order_whose_conditions_all_hold_applies() -> None:
    vip = policy(1, vip=True)
    urgent_chat = policy(2, priority=Priority.URGENT, channel=Channel.CHAT)
    team = policy(3, team_id=3, segment="enterprise")
    fallback = policy(4)
    book = SlaBook([vip, urgent_chat, team, fallback], {})
    assert book.choose(ticket(), customer(tags=["VIP"])) is vip  # the tag is read without case
    assert (
        book.choose(ticket(priority=Priority.URGENT, source_channel=Channel.CHAT), customer()) is urgent_chat
    )
    assert book.choose(ticket(priority=Priority.URGENT), customer()) is fallback  # email, not chat
    assert book.choose(ticket(), customer(segment="enterprise")) is team
    assert book.choose(ticket(team_id=4), customer(segment="enterprise")) is fallback
    assert book.choose(ticket(), None) is fallback
    assert book.reads_customers()
    assert not SlaBook([urgent_chat, fallback], {}).reads_customers()


def test_a_policy_for_customers_who_are_not_vip_and_an_inactive_policy() -> None:
    not_vip = policy(1, vip=False)
    assert policy_matches(not_vip, ticket(), customer())
    assert not policy_matches(not_vip, ticket(), customer(tags=["vip"]))
    inactive = policy(2)
    inactive.active = False
    assert not policy_matches(inactive, ticket(), customer())


def test_pending_and_resolved_pause_the_clock_and_opening_resumes_it() -> None:
    sla = TicketSla(ticket_id=1, started_at=T0, pauses=[])
    follow_status(sla, TicketStatus.OPEN, T0)
    assert sla.paused_since is None
    follow_status(sla, TicketStatus.PENDING, T0 + 10 * MINUTE)
    follow_status(sla, TicketStatus.PENDING, T0 + 20 * MINUTE)  # still the first pause
    assert sla.paused_since == T0 + 10 * MINUTE
    follow_status(sla, TicketStatus.OPEN, T0 + 40 * MINUTE)
    follow_status(sla, TicketStatus.RESOLVED, T0 + 50 * MINUTE)
    assert sla.pauses == [f"{(T0 + 10 * MINUTE).isoformat()}/{(T0 + 40 * MINUTE).isoformat()}"]
    assert sla.paused_since == T0 + 50 * MINUTE


def test_due_times_and_the_next_check_count_around_pauses() -> None:
    standard = policy(1)
    level = EscalationRule(
        id=9, policy_id=1, target=SlaTarget.FIRST_RESPONSE, level=1, percent=50, actions=[]
    )
    breach = EscalationRule(
        id=10, policy_id=1, target=SlaTarget.RESOLUTION, level=1, after_breach_minutes=30, actions=[]
    )
    sla = TicketSla(
        ticket_id=1,
        started_at=T0,
        pauses=[f"{(T0 + 10 * MINUTE).isoformat()}/{(T0 + 30 * MINUTE).isoformat()}"],
    )
    open_ticket = ticket(status=TicketStatus.OPEN)
    always = BusinessCalendar.always_open()
    compute(sla, open_ticket, standard, always, [level, breach], set())
    assert sla.first_response_due_at == T0 + 80 * MINUTE  # 60 minutes plus the 20 paused
    assert sla.resolution_due_at == T0 + 620 * MINUTE
    assert fire_moment(level, sla, standard, always) == T0 + 50 * MINUTE
    assert sla.next_check_at == T0 + 50 * MINUTE
    compute(sla, open_ticket, standard, always, [level, breach], {9})  # the 50% level has fired
    assert sla.next_check_at == T0 + 650 * MINUTE
    open_ticket.first_responded_at = T0 + 45 * MINUTE
    compute(sla, open_ticket, standard, always, [level, breach], set())
    assert sla.first_response_due_at is None and open_ticket.first_response_due_at is None
    assert sla.next_check_at == T0 + 650 * MINUTE
    compute(sla, ticket(status=TicketStatus.RESOLVED), standard, always, [level, breach], set())
    assert (sla.resolution_due_at, sla.next_check_at) == (None, None)


def test_a_calendar_closed_for_years_gives_no_due_time_instead_of_an_error() -> None:
    holidays = frozenset(T0.date() + timedelta(days=d) for d in range(4 * 366))
    closed = BusinessCalendar(weekly={0: BusinessCalendar.always_open().weekly[0]}, holidays=holidays)
    sla = TicketSla(ticket_id=1, started_at=T0, pauses=[])
    compute(sla, ticket(), policy(1), closed, [], set())
    assert (sla.first_response_due_at, sla.resolution_due_at, sla.next_check_at) == (None, None, None)
