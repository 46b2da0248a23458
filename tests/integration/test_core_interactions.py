"""The interaction log is idempotent by (channel, external id), also under concurrent redelivery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction
from crm_core.services import interactions
from crm_core.services.customers import create_customer
from crm_core.services.interactions import Logged, log_interaction
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Direction
from tests.conftest import RecordingPublisher


async def _customer(uow_factory: UnitOfWorkFactory, published: RecordingPublisher) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(uow, None, region="US", display_name="Ada")
        await uow.commit()
    published.events.clear()
    return customer.id


async def _rows(uow_factory: UnitOfWorkFactory) -> list[Interaction]:
    async with uow_factory() as uow:
        return list(await uow.session.scalars(select(Interaction).order_by(Interaction.id)))


async def test_first_delivery_stores_the_row_and_announces_it_after_commit(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    started = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    async with uow_factory() as uow:
        logged = await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=customer_id,
            external_id="CA0001",
            status="ringing",
            started_at=started,
            subject="Inbound call",
            meta={"from": "+12025550143", "to": "+12025550100"},
        )
        assert logged.created is True
        assert published.events == []
        await uow.commit()

    assert published.names() == ["interaction.logged"]
    assert published.events[0].payload == {
        "interaction_id": logged.interaction.id,
        "customer_id": customer_id,
        "channel": "voice",
        "direction": "inbound",
        "agent_id": None,
        "ticket_id": None,
    }
    [row] = await _rows(uow_factory)
    assert row.id == logged.interaction.id
    assert (row.channel, row.direction, row.external_id) == (Channel.VOICE, Direction.INBOUND, "CA0001")
    assert row.status == "ringing"
    assert row.started_at == started
    assert row.subject == "Inbound call"
    assert row.meta == {"from": "+12025550143", "to": "+12025550100"}


async def test_second_delivery_returns_the_same_row_and_announces_nothing(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    common: dict[str, Any] = {
        "channel": Channel.SMS,
        "direction": Direction.INBOUND,
        "customer_id": customer_id,
        "external_id": "SM42",
    }
    async with uow_factory() as uow:
        first = await log_interaction(uow, body="hello", **common)
        await uow.commit()
    async with uow_factory() as uow:
        second = await log_interaction(uow, body="hello again", status="redelivered", **common)
        assert uow.pending_events == ()
        await uow.commit()

    assert (first.created, second.created) == (True, False)
    assert second.interaction.id == first.interaction.id
    # The first delivery's content is kept: a redelivery does not overwrite it.
    assert (second.interaction.body, second.interaction.status) == ("hello", "logged")
    assert published.names() == ["interaction.logged"]
    assert len(await _rows(uow_factory)) == 1


async def test_redelivery_within_one_unit_of_work(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    async with uow_factory() as uow:
        results = [
            await log_interaction(
                uow,
                channel=Channel.EMAIL,
                direction=Direction.INBOUND,
                customer_id=customer_id,
                external_id="<m1@example.com>",
            )
            for _ in range(3)
        ]
        await uow.commit()
    assert [r.created for r in results] == [True, False, False]
    assert len({r.interaction.id for r in results}) == 1
    assert published.names() == ["interaction.logged"]


async def test_same_external_id_on_another_channel_is_another_interaction(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    async with uow_factory() as uow:
        voice = await log_interaction(
            uow, channel=Channel.VOICE, direction=Direction.INBOUND, customer_id=customer_id, external_id="X1"
        )
        sms = await log_interaction(
            uow, channel=Channel.SMS, direction=Direction.INBOUND, customer_id=customer_id, external_id="X1"
        )
        await uow.commit()
    assert voice.created and sms.created
    assert voice.interaction.id != sms.interaction.id
    assert [(r.channel, r.external_id) for r in await _rows(uow_factory)] == [
        (Channel.VOICE, "X1"),
        (Channel.SMS, "X1"),
    ]
    assert published.names() == ["interaction.logged", "interaction.logged"]


async def test_interactions_without_external_id_are_never_deduplicated(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    async with uow_factory() as uow:
        for _ in range(2):
            logged = await log_interaction(
                uow, channel=Channel.VOICE, direction=Direction.OUTBOUND, customer_id=customer_id
            )
            assert logged.created
        await uow.commit()
    assert len(await _rows(uow_factory)) == 2
    assert published.names() == ["interaction.logged", "interaction.logged"]


async def test_rolled_back_delivery_leaves_no_row_and_no_event(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    customer_id = await _customer(uow_factory, published)
    async with uow_factory() as uow:
        await log_interaction(
            uow, channel=Channel.CHAT, direction=Direction.INBOUND, customer_id=customer_id, external_id="c1"
        )
        await uow.rollback()
    assert await _rows(uow_factory) == []
    assert published.events == []
    # A later delivery of the same message is then the first one.
    async with uow_factory() as uow:
        logged = await log_interaction(
            uow, channel=Channel.CHAT, direction=Direction.INBOUND, customer_id=customer_id, external_id="c1"
        )
        await uow.commit()
    assert logged.created
    assert published.names() == ["interaction.logged"]


async def test_concurrent_double_delivery_yields_one_row(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = await _customer(uow_factory, published)
    # Both deliveries insert at the same moment: on PostgreSQL the second INSERT ... ON CONFLICT
    # waits for the first transaction, then does nothing and must find the committed row.
    together = asyncio.Barrier(2)

    async def insert_together(*args: Any, **kwargs: Any) -> Any:
        await asyncio.wait_for(together.wait(), 10)
        return await insert_ignore(*args, **kwargs)

    monkeypatch.setattr(interactions, "insert_ignore", insert_together)

    async def deliver() -> Logged:
        async with uow_factory() as uow:
            logged = await log_interaction(
                uow,
                channel=Channel.VOICE,
                direction=Direction.INBOUND,
                customer_id=customer_id,
                external_id="CA-race",
            )
            await uow.commit()
            return logged

    first, second = await asyncio.wait_for(asyncio.gather(deliver(), deliver()), 30)
    assert sorted([first.created, second.created]) == [False, True]
    assert first.interaction.id == second.interaction.id
    async with uow_factory() as uow:
        count = await uow.session.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.external_id == "CA-race")
        )
    assert count == 1
    assert published.names() == ["interaction.logged"]
