"""The unit of work publishes the events recorded in it after, and only after, it commits."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_core.db import UnitOfWorkFactory
from crm_core.events import DomainEvent
from crm_core.models import Team
from crm_core.services.identity import resolve_phone
from crm_core.services.interactions import log_interaction
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Channel, Direction
from tests.conftest import RecordingPublisher


def _events(*names: str) -> list[DomainEvent]:
    return [DomainEvent(name, {"n": i}) for i, name in enumerate(names)]


async def _team_names(uow_factory: UnitOfWorkFactory) -> list[str]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(Team.name).order_by(Team.name)))


async def test_events_are_published_in_order_after_commit(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    recorded = _events("a", "b", "c", "d")
    async with uow_factory() as uow:
        for e in recorded:
            uow.record(e)
        assert list(uow.pending_events) == recorded
        assert published.events == []
        await uow.commit()
        assert uow.pending_events == ()
    assert published.events == recorded


async def test_each_commit_publishes_only_what_was_recorded_since_the_last(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    first, second = _events("first"), _events("second", "third")
    async with uow_factory() as uow:
        uow.record(first[0])
        await uow.commit()
        assert published.events == first
        for e in second:
            uow.record(e)
        await uow.commit()
        await uow.commit()  # nothing new: nothing published
    assert published.events == first + second


async def test_rolled_back_events_are_never_published(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    discarded, kept = _events("discarded"), _events("kept")
    async with uow_factory() as uow:
        uow.session.add(Team(name="Discarded"))
        uow.record(discarded[0])
        await uow.rollback()
        assert uow.pending_events == ()
        uow.session.add(Team(name="Kept"))
        uow.record(kept[0])
        await uow.commit()
    assert published.events == kept
    assert await _team_names(uow_factory) == ["Kept"]


async def test_events_of_a_unit_of_work_that_raises_are_never_published(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    with pytest.raises(ValueError, match="boom"):
        async with uow_factory() as uow:
            uow.session.add(Team(name="Doomed"))
            await uow.session.flush()
            uow.record(DomainEvent("doomed", {}))
            raise ValueError("boom")
    assert published.events == []
    assert await _team_names(uow_factory) == []


async def test_leaving_without_commit_publishes_and_keeps_nothing(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        uow.session.add(Team(name="Forgotten"))
        await uow.session.flush()
        uow.record(DomainEvent("forgotten", {}))
    assert published.events == []
    assert await _team_names(uow_factory) == []


async def test_a_failed_commit_discards_its_events(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        uow.session.add(Team(name="Taken"))
        await uow.commit()
    published.events.clear()

    later = _events("later")
    async with uow_factory() as uow:
        uow.session.add(Team(name="Taken"))  # violates the unique name when the commit flushes
        uow.record(DomainEvent("never", {}))
        with pytest.raises(IntegrityError):
            await uow.commit()
        assert uow.pending_events == ()
        await uow.session.rollback()
        uow.record(later[0])
        await uow.commit()
    assert published.events == later


async def test_a_reused_unit_of_work_starts_without_events(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    uow = uow_factory()
    with pytest.raises(RuntimeError):
        async with uow:
            uow.record(DomainEvent("stale", {}))
            raise RuntimeError
    async with uow:
        assert uow.pending_events == ()
        uow.record(DomainEvent("fresh", {}))
        await uow.commit()
    assert published.names() == ["fresh"]


async def test_services_events_come_out_in_the_order_they_happened(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        caller = await resolve_phone(uow, "(202) 555-0143", region="US")
        await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=caller.customer.id,
            external_id="CA1",
        )
        await open_ticket(uow, None, customer_id=caller.customer.id, subject="Call back", sla=SlaPolicy())
        assert published.events == []
        await uow.commit()
    assert published.names() == ["customer.created", "interaction.logged", "ticket.opened"]
    assert {e.payload["customer_id"] for e in published.events} == {caller.customer.id}
