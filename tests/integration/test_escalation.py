"""SLA clocks and the escalation pass on a real database: each level fires once even with two
instances sharing it, pending pauses the clock, a priority change recomputes the due times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from channels.email.content_store import ContentStore
from channels.email.parsing import parse_message
from contact_center.settings import Settings
from contact_center.sms.inbound import receive_sms
from crm_core.db import UnitOfWorkFactory, create_engine
from crm_core.events import TICKET_ESCALATED
from crm_core.models import (
    Agent,
    AuditEntry,
    EmailMessage,
    EscalationFiring,
    EscalationRule,
    OutboxEntry,
    Role,
    ServiceCalendar,
    SlaPolicyRecord,
    SlaTarget,
    Ticket,
    TicketSla,
)
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.customers import create_customer
from crm_core.services.email_batch import ingest_batch
from crm_core.services.email_ingest import EmailPolicy, MailboxPolicy
from crm_core.services.email_outbound import Identity
from crm_core.services.escalation import escalation_pass
from crm_core.services.escalation_mail import EscalationMailer
from crm_core.services.sms_types import InboundSms, SmsPolicy
from crm_core.services.tickets import SlaPolicy, comment, open_ticket, reopen_for_customer, update_ticket
from crm_core.types import Priority
from crm_core.visibility import Viewer
from tests.conftest import RecordingPublisher, Staff
from tests.email_servers import make_mail

pytestmark = pytest.mark.asyncio(loop_scope="session")
NY = ZoneInfo("America/New_York")
MONDAY_9 = datetime(2026, 1, 12, 9, tzinfo=NY)
MINUTE = timedelta(minutes=1)


async def _setup(uow_factory: UnitOfWorkFactory, staff: Staff, *, by_priority: bool = False) -> None:
    async with uow_factory() as uow:
        s = uow.session
        weekdays = {d: "09:00-17:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
        calendar = ServiceCalendar(
            name="New York office", timezone="America/New_York", weekly=weekdays, holidays=[]
        )
        s.add(calendar)
        await s.flush()
        if by_priority:
            s.add_all(
                [
                    SlaPolicyRecord(
                        name="Urgent", position=1, calendar_id=calendar.id, priority=Priority.URGENT,
                        first_response_minutes=30, resolution_minutes=240,
                    ),
                    SlaPolicyRecord(
                        name="Everything else", position=2, calendar_id=calendar.id,
                        first_response_minutes=120, resolution_minutes=960,
                    ),
                ]
            )  # fmt: skip
            await uow.commit()
            return
        policy = SlaPolicyRecord(
            name="Standard",
            position=1,
            calendar_id=calendar.id,
            first_response_minutes=60,
            resolution_minutes=480,
        )
        s.add(policy)
        await s.flush()
        first = SlaTarget.FIRST_RESPONSE
        s.add_all(
            [
                EscalationRule(policy_id=policy.id, target=first, level=1, percent=75, actions=["notify_assignee"]),
                EscalationRule(
                    policy_id=policy.id, target=first, level=2, after_breach_minutes=0,
                    actions=["notify_supervisor", "raise_priority"],
                ),
                EscalationRule(
                    policy_id=policy.id, target=first, level=3, after_breach_minutes=60,
                    actions=["reassign_team", "notify_admin"], reassign_team_id=staff.blue.id,
                ),
            ]
        )  # fmt: skip
        await uow.commit()


async def _ticket(uow_factory: UnitOfWorkFactory, staff: Staff, at: datetime, **kwargs: object) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="Ada 李")
        ticket = await open_ticket(
            uow,
            None,
            customer_id=customer.id,
            subject="Router down / 路由器故障",
            sla=SlaPolicy(),
            assignee_id=staff.red_1.id,
            team_id=staff.red.id,
            now=at,
            **kwargs,  # type: ignore[arg-type]
        )
        await uow.commit()
    return ticket.id


async def _sla(uow_factory: UnitOfWorkFactory, ticket_id: int) -> tuple[Ticket, TicketSla]:
    async with uow_factory() as uow:
        ticket = await uow.session.get(Ticket, ticket_id)
        sla = await uow.session.get(TicketSla, ticket_id)
        assert ticket is not None and sla is not None
        return ticket, sla


async def test_each_level_fires_once_with_two_instances_sharing_the_database(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff, published: RecordingPublisher
) -> None:
    await _setup(uow_factory, staff)
    ids = [await _ticket(uow_factory, staff, MONDAY_9) for _ in range(6)]
    other_engine = create_engine(settings.database.url)
    other_publisher = RecordingPublisher()
    other = UnitOfWorkFactory(other_engine, other_publisher)
    try:
        # Simulated clock: passes every five minutes through Monday, both instances at once.
        moment = MONDAY_9
        while moment <= MONDAY_9 + timedelta(hours=3):
            await asyncio.gather(
                escalation_pass(uow_factory, moment, batch=2), escalation_pass(other, moment, batch=2)
            )
            moment += 5 * MINUTE
    finally:
        await other_engine.dispose()
    async with uow_factory() as uow:
        s = uow.session
        levels = (await s.execute(select(EscalationFiring.ticket_id, EscalationFiring.level))).all()
        assert sorted(levels) == sorted((t, lvl) for t in ids for lvl in (1, 2, 3))
        fired_at = dict(
            (lvl, at)
            for lvl, at in (
                await s.execute(
                    select(EscalationFiring.level, EscalationFiring.fired_at).where(
                        EscalationFiring.ticket_id == ids[0]
                    )
                )
            ).all()
        )
        history = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sla.escalated")
        )
    # 75% of 60 business minutes, the breach, the breach plus an hour.
    assert fired_at[1] == (MONDAY_9 + 45 * MINUTE).astimezone(UTC)
    assert fired_at[2] == (MONDAY_9 + 60 * MINUTE).astimezone(UTC)
    assert fired_at[3] == (MONDAY_9 + 120 * MINUTE).astimezone(UTC)
    assert history == 3 * len(ids)
    escalated = [e for e in published.events + other_publisher.events if e.name == TICKET_ESCALATED]
    by_level = sorted((e.payload["ticket_id"], e.payload["level"], e.payload["agent_id"]) for e in escalated)
    expected = [(t, 1, staff.red_1.id) for t in ids] + [(t, 2, staff.red_lead.id) for t in ids]
    expected += [(t, 3, staff.admin.id) for t in ids]
    assert by_level == sorted(expected)
    ticket, sla = await _sla(uow_factory, ids[0])
    assert ticket.priority is Priority.HIGH and ticket.team_id == staff.blue.id and ticket.assignee_id is None
    assert sla.next_check_at is None


async def test_pending_pauses_the_clock_and_an_answer_resumes_it(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _setup(uow_factory, staff)
    ticket_id = await _ticket(uow_factory, staff, MONDAY_9)
    _, sla = await _sla(uow_factory, ticket_id)
    assert sla.first_response_due_at == (MONDAY_9 + 60 * MINUTE).astimezone(UTC)
    agent = Viewer(agent_id=staff.red_1.id, role=Role.AGENT, team_id=staff.red.id)
    async with uow_factory() as uow:
        changes = {"status": TicketStatus.PENDING}
        await update_ticket(uow, agent, ticket_id, changes, sla=SlaPolicy(), now=MONDAY_9 + 20 * MINUTE)
        await uow.commit()
    ticket, sla = await _sla(uow_factory, ticket_id)
    assert sla.first_response_due_at is None and sla.next_check_at is None
    assert ticket.first_response_due_at is None
    report = await escalation_pass(uow_factory, MONDAY_9 + 5 * timedelta(hours=1))
    assert report.fired == 0
    # The customer answers on Tuesday morning: 40 business minutes were left.
    tuesday_10 = datetime(2026, 1, 13, 10, tzinfo=NY)
    async with uow_factory() as uow:
        await update_ticket(
            uow, agent, ticket_id, {"status": TicketStatus.OPEN}, sla=SlaPolicy(), now=tuesday_10
        )
        await uow.commit()
    ticket, sla = await _sla(uow_factory, ticket_id)
    assert sla.first_response_due_at == (tuesday_10 + 40 * MINUTE).astimezone(UTC)
    assert sla.next_check_at == (tuesday_10 + 25 * MINUTE).astimezone(UTC)  # 75%: 45 minutes counted
    assert (await escalation_pass(uow_factory, tuesday_10 + 24 * MINUTE)).fired == 0
    assert (await escalation_pass(uow_factory, tuesday_10 + 25 * MINUTE)).fired == 1
    # The agent answers the customer: the first response is met, nothing more is due on it.
    async with uow_factory() as uow:
        await comment(uow, agent, ticket_id, "On it / 正在处理", internal=False, now=tuesday_10 + 30 * MINUTE)
        await uow.commit()
    ticket, sla = await _sla(uow_factory, ticket_id)
    assert sla.first_response_due_at is None and sla.next_check_at is None
    # 480 minutes: 20 on Monday before the pause, 420 on Tuesday from 10:00, 40 on Wednesday.
    assert sla.resolution_due_at == datetime(2026, 1, 14, 9, 40, tzinfo=NY).astimezone(UTC)
    assert (await escalation_pass(uow_factory, tuesday_10 + 2 * timedelta(hours=1))).fired == 0


async def test_due_times_follow_a_priority_change(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    await _setup(uow_factory, staff, by_priority=True)
    ticket_id = await _ticket(uow_factory, staff, MONDAY_9 + 7 * timedelta(hours=1) + 30 * MINUTE)
    ticket, sla = await _sla(uow_factory, ticket_id)
    # 16:30 Monday plus 120 business minutes: 30 on Monday, 90 on Tuesday.
    assert sla.first_response_due_at == datetime(2026, 1, 13, 10, 30, tzinfo=NY).astimezone(UTC)
    assert ticket.resolution_due_at == datetime(2026, 1, 14, 16, 30, tzinfo=NY).astimezone(UTC)
    admin = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    async with uow_factory() as uow:
        changes = {"priority": Priority.URGENT}
        await update_ticket(
            uow, admin, ticket_id, changes, sla=SlaPolicy(), now=MONDAY_9 + 8 * timedelta(hours=1)
        )
        await uow.commit()
    ticket, sla = await _sla(uow_factory, ticket_id)
    urgent = await _policy_id(uow_factory, "Urgent")
    assert sla.policy_id == urgent
    assert sla.first_response_due_at == ticket.first_response_due_at == MONDAY_9 + 8 * timedelta(hours=1)
    assert sla.resolution_due_at == datetime(2026, 1, 13, 12, 30, tzinfo=NY).astimezone(UTC)


async def _policy_id(uow_factory: UnitOfWorkFactory, name: str) -> int:
    async with uow_factory() as uow:
        return int(
            await uow.session.scalar(select(SlaPolicyRecord.id).where(SlaPolicyRecord.name == name)) or 0
        )


async def test_a_customer_answer_on_a_pending_ticket_resumes_the_clock_and_asks_for_a_reply(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    async with uow_factory() as uow:
        weekdays = {d: "09:00-17:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
        calendar = ServiceCalendar(name="NY", timezone="America/New_York", weekly=weekdays, holidays=[])
        uow.session.add(calendar)
        await uow.session.flush()
        uow.session.add(
            SlaPolicyRecord(
                name="Replies", calendar_id=calendar.id, first_response_minutes=60, next_response_minutes=120,
                resolution_minutes=960,
            )
        )  # fmt: skip
        await uow.commit()
    ticket_id = await _ticket(uow_factory, staff, MONDAY_9)
    agent = Viewer(agent_id=staff.red_1.id, role=Role.AGENT, team_id=staff.red.id)
    async with uow_factory() as uow:
        await comment(
            uow, agent, ticket_id, "Which model? / 哪个型号?", internal=False, now=MONDAY_9 + 10 * MINUTE
        )
        await update_ticket(
            uow,
            agent,
            ticket_id,
            {"status": TicketStatus.PENDING},
            sla=SlaPolicy(),
            now=MONDAY_9 + 10 * MINUTE,
        )
        await uow.commit()
    _, sla = await _sla(uow_factory, ticket_id)
    assert (
        sla.first_response_due_at is None
        and sla.next_response_due_at is None
        and sla.paused_since is not None
    )
    # The customer writes back at 16:00: the ticket opens again and a reply is due in 120 business minutes.
    answered = MONDAY_9 + 7 * timedelta(hours=1)
    async with uow_factory() as uow:
        reopened = await uow.session.get(Ticket, ticket_id)
        assert reopened is not None
        await reopen_for_customer(uow, reopened, "email", answered)
        await uow.commit()
    ticket, sla = await _sla(uow_factory, ticket_id)
    assert ticket.status is TicketStatus.OPEN and sla.paused_since is None
    assert sla.next_response_due_at == datetime(2026, 1, 13, 10, tzinfo=NY).astimezone(UTC)
    # Resolution, 960 minutes: 10 before the pause, 60 from Monday 16:00, 480 on Tuesday, 410 on Wednesday.
    assert sla.resolution_due_at == datetime(2026, 1, 14, 15, 50, tzinfo=NY).astimezone(UTC)
    async with uow_factory() as uow:
        await comment(uow, agent, ticket_id, "Fixed / 已修复", internal=False, now=answered + 30 * MINUTE)
        await uow.commit()
    _, sla = await _sla(uow_factory, ticket_id)
    assert sla.next_response_due_at is None and sla.next_response_since is None


async def test_the_people_notified_are_mailed_through_the_outbox(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _setup(uow_factory, staff)
    async with uow_factory() as uow:
        for agent_id, address in (
            (staff.red_1.id, "red1@example.com"),
            (staff.red_lead.id, "lead@example.com"),
        ):
            agent = await uow.session.get(Agent, agent_id)
            assert agent is not None
            agent.email = address
        await uow.commit()
    ticket_id = await _ticket(uow_factory, staff, MONDAY_9)
    mailer = EscalationMailer(
        Identity("support", "support@example.com", "Support 客服"), b"k" * 32, "example.com"
    )
    report = await escalation_pass(uow_factory, MONDAY_9 + 60 * MINUTE, mailer=mailer)
    assert (report.fired, report.mailed) == (2, 2)  # 75% to the assignee, the breach to the supervisor
    async with uow_factory() as uow:
        mails = list(await uow.session.scalars(select(EmailMessage).order_by(EmailMessage.id)))
        queued = await uow.session.scalar(select(func.count()).select_from(OutboxEntry))
    assert [m.to_addresses for m in mails] == [["red1@example.com"], ["lead@example.com"]]
    assert all(m.ticket_id is None for m in mails)  # not threaded into the customer's ticket
    # A notice to staff, not part of the customer's history.
    assert all(m.customer_id is None and m.interaction_id is None for m in mails)
    assert "first response due soon (escalation level 1)" in mails[0].subject
    assert "first response overdue (escalation level 2)" in mails[1].subject
    assert queued == 2
    # Nothing fires, or is mailed, twice.
    again = await escalation_pass(uow_factory, MONDAY_9 + 90 * MINUTE, mailer=mailer)
    assert (again.fired, again.mailed) == (0, 0)
    _, sla = await _sla(uow_factory, ticket_id)
    assert sla.next_check_at is not None


async def test_tickets_opened_by_a_batch_of_mail_get_their_sla_clocks(
    uow_factory: UnitOfWorkFactory, staff: Staff, tmp_path: Path
) -> None:
    await _setup(uow_factory, staff, by_priority=True)
    store = ContentStore(tmp_path)
    mails = [
        parse_message(
            make_mail(sender=f"c{n}@example.org", subject=f"Help {n} / 帮助"),
            store,
            max_attachment_bytes=10**6,
        )
        for n in range(3)
    ]
    policy = EmailPolicy(
        secret=b"sla-batch",
        domain="example.com",
        our_addresses=frozenset({"support@example.com"}),
        sla=SlaPolicy(),
    )
    opened_at = MONDAY_9 + 30 * MINUTE
    async with uow_factory() as uow:
        await ingest_batch(
            uow, MailboxPolicy(name="support", address="support@example.com"), policy, mails, opened_at
        )
        await uow.commit()
    async with uow_factory() as uow:
        clocks = list(await uow.session.scalars(select(TicketSla)))
        everything_else = await _policy_id(uow_factory, "Everything else")
    assert len(clocks) == 3
    # The "Everything else" policy: 120 business minutes from 09:30.
    assert {c.policy_id for c in clocks} == {everything_else}
    assert {c.first_response_due_at for c in clocks} == {(opened_at + 120 * MINUTE).astimezone(UTC)}


async def test_a_customers_text_on_an_answered_open_ticket_asks_for_the_next_response(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    async with uow_factory() as uow:
        uow.session.add(SlaPolicyRecord(name="Texts", first_response_minutes=30, next_response_minutes=15))
        await uow.commit()
    policy = SmsPolicy(region="US", sla=SlaPolicy(), default_from="+15005550006")

    async def text(body: str, sid: str, at: datetime) -> int:
        async with uow_factory() as uow:
            received = await receive_sms(
                uow, InboundSms(sid, "+12025550143", "+15005550006", body), policy, at
            )
            await uow.commit()
        assert received.ticket is not None
        return received.ticket.id

    ticket_id = await text("Router down / 路由器坏了", "SM" + "1" * 32, MONDAY_9)
    _, sla = await _sla(uow_factory, ticket_id)
    assert sla.first_response_due_at == (MONDAY_9 + 30 * MINUTE).astimezone(UTC)
    assert sla.next_response_due_at is None  # the first response covers the first wait
    agent = Viewer(agent_id=staff.admin.id, role=Role.ADMIN)
    async with uow_factory() as uow:
        await comment(uow, agent, ticket_id, "Restart it please", internal=False, now=MONDAY_9 + 5 * MINUTE)
        await update_ticket(
            uow, agent, ticket_id, {"status": TicketStatus.OPEN}, sla=SlaPolicy(), now=MONDAY_9
        )
        await uow.commit()
    assert await text("Still down", "SM" + "2" * 32, MONDAY_9 + 20 * MINUTE) == ticket_id
    _, sla = await _sla(uow_factory, ticket_id)
    assert sla.next_response_due_at == (MONDAY_9 + 35 * MINUTE).astimezone(UTC)


@pytest.mark.needs_postgres  # row locks that others skip are PostgreSQL's; SQLite has one writer at a time
async def test_a_ticket_an_agent_is_changing_is_left_to_a_later_pass(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _setup(uow_factory, staff)
    busy_id, free_id = (
        await _ticket(uow_factory, staff, MONDAY_9),
        await _ticket(uow_factory, staff, MONDAY_9),
    )
    at = MONDAY_9 + 50 * MINUTE
    async with uow_factory() as agent_change:  # an agent's update holds the ticket's row
        await agent_change.session.execute(select(Ticket).where(Ticket.id == busy_id).with_for_update())
        report = await asyncio.wait_for(escalation_pass(uow_factory, at), timeout=10)
        await agent_change.session.rollback()
    assert report.fired == 1
    assert await _levels_of(uow_factory, busy_id) == [] and await _levels_of(uow_factory, free_id) == [1]
    _, sla = await _sla(uow_factory, busy_id)
    assert sla.next_check_at == (MONDAY_9 + 45 * MINUTE).astimezone(UTC)  # still due, not claimed
    assert (await escalation_pass(uow_factory, at)).fired == 1
    assert await _levels_of(uow_factory, busy_id) == [1]


async def _levels_of(uow_factory: UnitOfWorkFactory, ticket_id: int) -> list[int]:
    async with uow_factory() as uow:
        stmt = select(EscalationFiring.level).where(EscalationFiring.ticket_id == ticket_id)
        return sorted(await uow.session.scalars(stmt))
