"""JSON columns never hand PostgreSQL what ``jsonb`` refuses, whoever wrote the value."""

from __future__ import annotations

from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Customer, Interaction
from crm_core.types import Channel, Direction


async def test_nul_in_json_values_and_keys_is_dropped_on_write(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        customer = Customer(
            display_name="Json Guard", custom_fields={"no\x00te": "a\x00b", "n": [1, "\ud800"]}
        )
        uow.session.add(customer)
        await uow.session.flush()
        uow.session.add(
            Interaction(
                customer_id=customer.id,
                channel=Channel.VOICE,
                direction=Direction.INBOUND,
                external_id="CA" + "0" * 32,
                meta={"caller_name": "Eve\x00", "answered_at": "2026-12-07T10:00:00+00:00"},
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.session.scalar(select(Customer).where(Customer.display_name == "Json Guard"))
        assert stored is not None and stored.custom_fields == {"note": "ab", "n": [1, "\ufffd"]}
        meta = await uow.session.scalar(
            select(Interaction.meta).where(Interaction.meta["caller_name"].as_string() == "Eve")
        )
        assert meta == {"caller_name": "Eve", "answered_at": "2026-12-07T10:00:00+00:00"}
