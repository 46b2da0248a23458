"""The screen-pop card: its content, and a number of SQL statements that does not grow with history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction, Ticket
from crm_core.rules.ticket_status import TicketStatus
from crm_core.services.customer_card import RECENT_INTERACTIONS, CustomerCard, card_by_phone
from crm_core.services.customers import create_customer
from crm_core.types import Channel, Direction, Priority
from tests.conftest import Staff

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
STATUS_CYCLE = [
    TicketStatus.NEW,
    TicketStatus.OPEN,
    TicketStatus.PENDING,
    TicketStatus.RESOLVED,
    TicketStatus.CLOSED,
]


async def _customer_with_history(
    uow_factory: UnitOfWorkFactory,
    *,
    name: str,
    phone: str,
    owner_id: int,
    interactions: int,
    tickets: int,
    first_number: int,
) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow,
            None,
            region="US",
            display_name=name,
            phones=[phone],
            emails=[f"{name.lower().replace(' ', '.')}@example.com"],
            owner_id=owner_id,
        )
        s = uow.session
        s.add_all(
            Ticket(
                number=first_number + i,
                subject=f"Ticket {i}",
                status=STATUS_CYCLE[i % len(STATUS_CYCLE)],
                customer_id=customer.id,
            )
            for i in range(tickets)
        )
        # Inserted in shuffled time order so the card has to sort them.
        s.add_all(
            Interaction(
                channel=Channel.VOICE if i % 2 else Channel.EMAIL,
                direction=Direction.INBOUND,
                customer_id=customer.id,
                started_at=T0 + timedelta(minutes=(i * 37) % interactions),
                subject=f"Contact {(i * 37) % interactions}",
            )
            for i in range(interactions)
        )
        await uow.commit()
    return customer.id


async def test_card_content(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow,
            None,
            region="US",
            display_name="Ada Lovelace",
            phones=["(202) 555-0143", "+44 20 7946 0958"],
            emails=["Ada@Example.com"],
            owner_id=staff.red_1.id,
            company="Analytical Engines Ltd",
            tags=["vip", "b2b"],
            segment="enterprise",
            timezone="Europe/London",
            preferred_language="en",
        )
        s = uow.session
        ticket_ids: dict[TicketStatus, int] = {}
        for n, status in enumerate(STATUS_CYCLE):
            ticket = Ticket(
                number=100 + n,
                subject=f"{status} ticket",
                status=status,
                priority=Priority.HIGH,
                customer_id=customer.id,
                assignee_id=staff.red_1.id,
                resolution_due_at=T0 + timedelta(days=n + 1, microseconds=250),
            )
            s.add(ticket)
            await s.flush()
            ticket_ids[status] = ticket.id
        s.add_all(
            Interaction(
                channel=Channel.SMS,
                direction=Direction.OUTBOUND,
                customer_id=customer.id,
                started_at=T0 + timedelta(hours=i),
                subject=f"msg {i}",
                summary=f"summary {i}",
                agent_id=staff.red_1.id,
            )
            for i in range(25)
        )
        await uow.commit()

    async with uow_factory() as uow:
        card = await card_by_phone(uow.session, "+442079460958")
    assert isinstance(card, CustomerCard)
    assert card.customer_id == customer.id
    assert (card.display_name, card.company) == ("Ada Lovelace", "Analytical Engines Ltd")
    assert (card.owner_id, card.owner_name) == (staff.red_1.id, "Red-1")
    assert card.tags == ["vip", "b2b"]
    assert (card.segment, card.timezone, card.preferred_language) == ("enterprise", "Europe/London", "en")
    assert card.phones == ["+12025550143", "+442079460958"]
    assert card.emails == ["ada@example.com"]

    # Only active tickets, newest first.
    assert [t.id for t in card.open_tickets] == [
        ticket_ids[TicketStatus.PENDING],
        ticket_ids[TicketStatus.OPEN],
        ticket_ids[TicketStatus.NEW],
    ]
    assert [t.status for t in card.open_tickets] == ["pending", "open", "new"]
    assert {t.priority for t in card.open_tickets} == {"high"}
    # Timestamps survive the JSON round trip exactly, as aware UTC datetimes.
    assert [t.resolution_due_at for t in card.open_tickets] == [
        T0 + timedelta(days=n, microseconds=250) for n in (3, 2, 1)
    ]

    # The last 20 interactions, newest first.
    assert RECENT_INTERACTIONS == 20
    assert [i.subject for i in card.recent_interactions] == [f"msg {i}" for i in range(24, 4, -1)]
    newest = card.recent_interactions[0]
    assert (newest.channel, newest.direction, newest.summary) == ("sms", "outbound", "summary 24")
    assert newest.started_at == T0 + timedelta(hours=24)
    assert newest.agent_id == staff.red_1.id

    data = card.to_json()
    assert data["owner"] == {"id": staff.red_1.id, "name": "Red-1"}
    assert data["recent_interactions"][0]["started_at"] == (T0 + timedelta(hours=24)).isoformat()
    assert len(data["open_tickets"]) == 3


async def test_pool_customer_card_has_no_owner(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await create_customer(uow, None, region="US", display_name="Pool", phones=["(202) 555-0150"])
        await uow.commit()
    async with uow_factory() as uow:
        card = await card_by_phone(uow.session, "+12025550150")
    assert card is not None
    assert (card.owner_id, card.owner_name) == (None, None)
    assert (card.open_tickets, card.recent_interactions, card.emails) == ([], [], [])
    assert card.to_json()["owner"] is None


async def test_unknown_number_has_no_card(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    await _customer_with_history(
        uow_factory,
        name="Known",
        phone="(202) 555-0160",
        owner_id=staff.red_1.id,
        interactions=1,
        tickets=1,
        first_number=1,
    )
    async with uow_factory() as uow:
        assert await card_by_phone(uow.session, "+12025550161") is None


@contextmanager
def _counting_statements(uow_factory: UnitOfWorkFactory) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    target = uow_factory.engine.sync_engine
    event.listen(target, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", count)


async def test_number_of_statements_does_not_grow_with_history(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _customer_with_history(
        uow_factory,
        name="Light User",
        phone="(202) 555-0171",
        owner_id=staff.red_1.id,
        interactions=1,
        tickets=0,
        first_number=1,
    )
    await _customer_with_history(
        uow_factory,
        name="Heavy User",
        phone="(202) 555-0172",
        owner_id=staff.red_2.id,
        interactions=200,
        tickets=30,
        first_number=100,
    )

    counts: dict[str, int] = {}
    cards: dict[str, CustomerCard] = {}
    for label, e164 in [("light", "+12025550171"), ("heavy", "+12025550172")]:
        async with uow_factory() as uow:
            with _counting_statements(uow_factory) as statements:
                card = await card_by_phone(uow.session, e164)
        assert card is not None
        counts[label] = len(statements)
        cards[label] = card

    # The whole card is one statement, however long the history.
    assert counts == {"light": 1, "heavy": 1}, counts

    heavy = cards["heavy"]
    assert len(heavy.recent_interactions) == 20
    starts = [i.started_at for i in heavy.recent_interactions]
    assert starts == sorted(starts, reverse=True)
    assert starts[0] == T0 + timedelta(minutes=199)
    assert starts[-1] == T0 + timedelta(minutes=180)
    # 30 tickets cycling through five statuses: 18 are new, open or pending.
    assert len(heavy.open_tickets) == 18
    assert {t.status for t in heavy.open_tickets} == {"new", "open", "pending"}
    assert heavy.owner_name == "Red-2"
    assert len(cards["light"].recent_interactions) == 1
    assert cards["light"].open_tickets == []
