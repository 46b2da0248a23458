"""Tickets: numbering (also under concurrency), due times, audited updates, events after commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import InvalidTransition, NotFound
from crm_core.models import AuditEntry, Ticket
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services import tickets
from crm_core.services.customers import create_customer
from crm_core.services.tickets import (
    SlaPolicy,
    comment,
    open_ticket,
    open_ticket_for_customer,
    update_ticket,
)
from crm_core.types import Channel, Priority
from crm_core.visibility import Viewer
from tests.conftest import RecordingPublisher, Staff

SLA = SlaPolicy(
    first_response={
        Priority.URGENT: timedelta(minutes=15),
        Priority.HIGH: timedelta(minutes=45),
        Priority.NORMAL: timedelta(hours=3),
        Priority.LOW: timedelta(hours=30),
    },
    resolution={
        Priority.URGENT: timedelta(hours=2),
        Priority.HIGH: timedelta(hours=10),
        Priority.NORMAL: timedelta(days=2),
        Priority.LOW: timedelta(days=9),
    },
    first_number=5000,
)


async def _customer(uow_factory: UnitOfWorkFactory, name: str = "Ada") -> int:
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name=name)
        await uow.commit()
    return customer.id


async def _open(uow_factory: UnitOfWorkFactory, customer_id: int, **kwargs: Any) -> Ticket:
    kwargs.setdefault("subject", "Help")
    kwargs.setdefault("sla", SLA)
    async with uow_factory() as uow:
        ticket = await open_ticket(uow, None, customer_id=customer_id, **kwargs)
        await uow.commit()
    return ticket


async def _reload(uow_factory: UnitOfWorkFactory, ticket_id: int) -> Ticket:
    async with uow_factory() as uow:
        return await uow.session.get_one(Ticket, ticket_id)


async def _audit(uow_factory: UnitOfWorkFactory, ticket_id: int) -> list[AuditEntry]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "ticket", AuditEntry.entity_id == ticket_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


# --- numbers --------------------------------------------------------------------------------------


async def test_numbers_are_sequential_from_the_first_number(uow_factory: UnitOfWorkFactory) -> None:
    customer_id = await _customer(uow_factory)
    numbers = [(await _open(uow_factory, customer_id)).number for _ in range(3)]
    assert numbers == [5000, 5001, 5002]
    # first_number only seeds the counter: numbering continues, it never restarts.
    later = await _open(uow_factory, customer_id, sla=SlaPolicy(first_number=1))
    assert later.number == 5003


async def test_several_tickets_in_one_unit_of_work(uow_factory: UnitOfWorkFactory) -> None:
    customer_id = await _customer(uow_factory)
    async with uow_factory() as uow:
        opened = [
            await open_ticket(uow, None, customer_id=customer_id, subject=f"T{i}", sla=SLA) for i in range(3)
        ]
        await uow.commit()
    assert [t.number for t in opened] == [5000, 5001, 5002]


async def test_a_rolled_back_ticket_gives_its_number_back(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory)
    published.events.clear()
    async with uow_factory() as uow:
        ticket = await open_ticket(uow, None, customer_id=customer_id, subject="Oops", sla=SLA)
        assert ticket.number == 5000
        assert [e.name for e in uow.pending_events] == ["ticket.opened"]
        await uow.rollback()
    assert published.events == []
    async with uow_factory() as uow:
        assert list(await uow.session.scalars(select(Ticket))) == []
    assert (await _open(uow_factory, customer_id)).number == 5000


async def test_numbers_are_unique_under_concurrent_opening(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = await _customer(uow_factory)
    published.events.clear()
    workers = 10
    # Every opener asks for a number at the same moment, before the counter row even exists.
    together = asyncio.Barrier(workers)
    real_next = tickets.next_ticket_number

    async def next_together(*args: Any, **kwargs: Any) -> int:
        await asyncio.wait_for(together.wait(), 10)
        return await real_next(*args, **kwargs)

    monkeypatch.setattr(tickets, "next_ticket_number", next_together)

    async def opener(i: int) -> int:
        async with uow_factory() as uow:
            ticket = await open_ticket(uow, None, customer_id=customer_id, subject=f"Call {i}", sla=SLA)
            await uow.commit()
            return ticket.number

    numbers = await asyncio.wait_for(asyncio.gather(*(opener(i) for i in range(workers))), 60)
    assert sorted(numbers) == list(range(5000, 5000 + workers))
    async with uow_factory() as uow:
        stored = sorted(await uow.session.scalars(select(Ticket.number)))
    assert stored == list(range(5000, 5000 + workers))
    assert published.names() == ["ticket.opened"] * workers


# --- due times ------------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", list(Priority))
async def test_due_times_follow_the_priority(uow_factory: UnitOfWorkFactory, priority: Priority) -> None:
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id, priority=priority)
    ticket = await _reload(uow_factory, opened.id)
    assert ticket.priority is priority
    assert ticket.status is TicketStatus.NEW
    assert ticket.first_response_due_at == ticket.created_at + SLA.first_response[priority]
    assert ticket.resolution_due_at == ticket.created_at + SLA.resolution[priority]


def test_default_policy() -> None:
    policy = SlaPolicy()
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    expected = {
        Priority.URGENT: (timedelta(minutes=30), timedelta(hours=4)),
        Priority.HIGH: (timedelta(hours=1), timedelta(hours=24)),
        Priority.NORMAL: (timedelta(hours=4), timedelta(days=3)),
        Priority.LOW: (timedelta(hours=24), timedelta(days=7)),
    }
    for priority, (first, resolution) in expected.items():
        assert policy.due_times(priority, start) == (start + first, start + resolution)
    assert policy.first_number == 1000


async def test_priority_change_moves_the_due_times_from_creation(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id, priority=Priority.LOW)
    async with uow_factory() as uow:
        await update_ticket(uow, admin, opened.id, {"priority": "urgent"}, sla=SLA)
        await uow.commit()
    ticket = await _reload(uow_factory, opened.id)
    assert ticket.first_response_due_at == ticket.created_at + timedelta(minutes=15)
    assert ticket.resolution_due_at == ticket.created_at + timedelta(hours=2)

    # Once the customer had a first answer, only the resolution deadline moves.
    async with uow_factory() as uow:
        await comment(uow, admin, opened.id, "On it", internal=False)
        await uow.commit()
    async with uow_factory() as uow:
        await update_ticket(uow, admin, opened.id, {"priority": Priority.HIGH}, sla=SLA)
        await uow.commit()
    ticket = await _reload(uow_factory, opened.id)
    assert ticket.first_responded_at is not None
    assert ticket.first_response_due_at == ticket.created_at + timedelta(minutes=15)
    assert ticket.resolution_due_at == ticket.created_at + timedelta(hours=10)


# --- opening --------------------------------------------------------------------------------------


async def test_open_ticket_audits_and_announces_after_commit(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    customer_id = await _customer(uow_factory)
    published.events.clear()
    async with uow_factory() as uow:
        ticket = await open_ticket(
            uow,
            Viewer.of(staff.red_1),
            customer_id=customer_id,
            subject="  Router down  ",
            sla=SLA,
            assignee_id=staff.red_1.id,
            team_id=staff.red.id,
            source_channel=Channel.VOICE,
        )
        assert published.events == []
        await uow.commit()

    assert ticket.subject == "Router down"
    assert published.names() == ["ticket.opened"]
    assert published.events[0].payload == {
        "ticket_id": ticket.id,
        "number": 5000,
        "customer_id": customer_id,
        "assignee_id": staff.red_1.id,
        "agent_id": staff.red_1.id,
        "team_id": staff.red.id,
        "status": "new",
        "subject": "Router down",
    }
    [entry] = await _audit(uow_factory, ticket.id)
    assert (entry.action, entry.actor_id) == ("opened", staff.red_1.id)
    assert entry.changes == {
        "number": 5000,
        "subject": "Router down",
        "assignee_id": staff.red_1.id,
        "team_id": staff.red.id,
    }


async def test_open_ticket_for_an_unknown_customer(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await open_ticket(uow, None, customer_id=987654, subject="x", sla=SLA)


# --- updates --------------------------------------------------------------------------------------


async def test_update_ticket_audits_old_and_new_values(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id, subject="Old subject")
    published.events.clear()

    async with uow_factory() as uow:
        ticket = await update_ticket(
            uow,
            admin,
            opened.id,
            {
                "subject": "New subject",
                "priority": "high",
                "status": "open",
                "assignee_id": staff.red_1.id,
                "team_id": staff.red.id,
            },
            sla=SLA,
        )
        assert published.events == []
        await uow.commit()

    assert (ticket.subject, ticket.priority, ticket.status) == (
        "New subject",
        Priority.HIGH,
        TicketStatus.OPEN,
    )
    opened_entry, updated_entry = await _audit(uow_factory, opened.id)
    assert opened_entry.action == "opened"
    assert (updated_entry.action, updated_entry.actor_id) == ("updated", staff.admin.id)
    assert updated_entry.changes == {
        "subject": ["Old subject", "New subject"],
        "priority": ["normal", "high"],
        "status": ["new", "open"],
        "assignee_id": [None, staff.red_1.id],
        "team_id": [None, staff.red.id],
    }
    assert published.names() == ["ticket.updated"]
    payload = published.events[0].payload
    assert payload["changes"] == ["assignee_id", "priority", "status", "subject", "team_id"]
    assert (payload["status"], payload["assignee_id"], payload["team_id"]) == (
        "open",
        staff.red_1.id,
        staff.red.id,
    )


async def test_an_update_that_changes_nothing_is_not_audited(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id, subject="Same")
    published.events.clear()
    async with uow_factory() as uow:
        await update_ticket(
            uow,
            Viewer.of(staff.admin),
            opened.id,
            {"subject": "Same", "priority": "normal", "status": "new", "assignee_id": None},
            sla=SLA,
        )
        await uow.commit()
    assert [e.action for e in await _audit(uow_factory, opened.id)] == ["opened"]
    assert published.events == []


async def test_status_changes_stamp_resolution_and_closing(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id)

    async def move(status: str) -> Ticket:
        async with uow_factory() as uow:
            await update_ticket(uow, admin, opened.id, {"status": status}, sla=SLA)
            await uow.commit()
        return await _reload(uow_factory, opened.id)

    resolved = await move("resolved")
    assert resolved.resolved_at is not None and resolved.closed_at is None
    reopened = await move("open")
    assert reopened.status is TicketStatus.OPEN and reopened.resolved_at is None
    closed = await move("closed")
    assert closed.closed_at is not None and closed.resolved_at == closed.closed_at
    statuses = [e.changes["status"] for e in (await _audit(uow_factory, opened.id))[1:]]
    assert statuses == [["new", "resolved"], ["resolved", "open"], ["open", "closed"]]


async def test_refused_transition_changes_nothing(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id)
    async with uow_factory() as uow:
        await update_ticket(uow, admin, opened.id, {"status": "closed"}, sla=SLA)
        await uow.commit()
    published.events.clear()

    with pytest.raises(InvalidTransition, match="a closed ticket cannot become open"):
        async with uow_factory() as uow:
            await update_ticket(uow, admin, opened.id, {"subject": "Reopen?", "status": "open"}, sla=SLA)
            await uow.commit()
    ticket = await _reload(uow_factory, opened.id)
    assert (ticket.status, ticket.subject) == (TicketStatus.CLOSED, "Help")
    assert published.events == []
    assert [e.action for e in await _audit(uow_factory, opened.id)] == ["opened", "updated"]


async def test_no_events_after_rollback(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    customer_id = await _customer(uow_factory)
    opened = await _open(uow_factory, customer_id)
    published.events.clear()
    async with uow_factory() as uow:
        await update_ticket(uow, admin, opened.id, {"priority": "urgent", "status": "pending"}, sla=SLA)
        assert [e.name for e in uow.pending_events] == ["ticket.updated"]
        await uow.rollback()
    assert published.events == []
    ticket = await _reload(uow_factory, opened.id)
    assert (ticket.priority, ticket.status) == (Priority.NORMAL, TicketStatus.NEW)
    assert [e.action for e in await _audit(uow_factory, opened.id)] == ["opened"]


# --- threading new contacts -----------------------------------------------------------------------


async def test_open_ticket_for_customer(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    admin = Viewer.of(staff.admin)
    ada = await _customer(uow_factory, "Ada")
    bob = await _customer(uow_factory, "Bob")
    voice = await _open(uow_factory, ada, source_channel=Channel.VOICE)
    email = await _open(uow_factory, ada, source_channel=Channel.EMAIL)
    newest = await _open(uow_factory, ada, source_channel=Channel.EMAIL)
    async with uow_factory() as uow:
        await update_ticket(uow, admin, newest.id, {"status": "resolved"}, sla=SLA)
        await uow.commit()

    async with uow_factory() as uow:
        s = uow.session
        found = await open_ticket_for_customer(s, ada)
        assert found is not None and found.id == email.id  # the newest *active* one
        by_voice = await open_ticket_for_customer(s, ada, source_channel=Channel.VOICE)
        assert by_voice is not None and by_voice.id == voice.id
        assert await open_ticket_for_customer(s, ada, source_channel=Channel.SMS) is None
        assert await open_ticket_for_customer(s, bob) is None

    async with uow_factory() as uow:
        await update_ticket(uow, admin, email.id, {"status": "pending"}, sla=SLA)
        await update_ticket(uow, admin, voice.id, {"status": "closed"}, sla=SLA)
        await uow.commit()
    async with uow_factory() as uow:
        found = await open_ticket_for_customer(uow.session, ada)
        assert found is not None and found.id == email.id  # pending is still active
        assert await open_ticket_for_customer(uow.session, ada, source_channel=Channel.VOICE) is None
