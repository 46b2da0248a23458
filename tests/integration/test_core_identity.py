"""Identity resolution on a real database: known contact points, new pool customers, races."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from crm_core.db import UnitOfWork, UnitOfWorkFactory
from crm_core.errors import InvalidInput
from crm_core.models import AuditEntry, Customer, CustomerEmail, CustomerPhone
from crm_core.services import identity
from crm_core.services.customers import create_customer
from crm_core.services.identity import Resolution, resolve_email, resolve_phone, resolve_visitor
from tests.conftest import RecordingPublisher

REGION = "US"


async def _count(uow_factory: UnitOfWorkFactory, model: type[object]) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def _known(
    uow_factory: UnitOfWorkFactory, name: str, *, phones: Sequence[str] = (), emails: Sequence[str] = ()
) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow, None, region=REGION, display_name=name, phones=phones, emails=emails
        )
        await uow.commit()
        return customer.id


async def _audit(uow_factory: UnitOfWorkFactory, customer_id: int) -> list[AuditEntry]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "customer", AuditEntry.entity_id == customer_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


# --- phone ----------------------------------------------------------------------------------------


async def test_known_phone_returns_its_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    ada = await _known(uow_factory, "Ada", phones=["(202) 555-0143"])
    before = list(published.events)
    async with uow_factory() as uow:
        found = await resolve_phone(uow, "+1 202-555-0143", region=REGION)
        assert found.created is False
        assert found.customer.id == ada
        assert found.customer.display_name == "Ada"
        assert uow.pending_events == ()
        await uow.commit()
    assert published.events == before
    assert await _count(uow_factory, Customer) == 1


async def test_unknown_phone_creates_a_pool_customer_announced_after_commit(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        result = await resolve_phone(uow, "(202) 555-0199", region=REGION, source="voice")
        assert result.created is True
        customer = result.customer
        assert customer.owner_id is None
        assert customer.display_name == "+12025550199"
        assert [e.name for e in uow.pending_events] == ["customer.created"]
        assert published.events == []  # nothing leaves before the commit
        await uow.commit()

    assert published.names() == ["customer.created"]
    assert published.events[0].payload == {
        "customer_id": customer.id,
        "owner_id": None,
        "display_name": "+12025550199",
        "source": "voice",
    }
    async with uow_factory() as uow:
        phone = await uow.session.scalar(select(CustomerPhone).where(CustomerPhone.e164 == "+12025550199"))
        assert phone is not None and phone.customer_id == customer.id
    [entry] = await _audit(uow_factory, customer.id)
    assert entry.action == "created"
    assert entry.actor_id is None
    assert entry.changes == {"source": "voice", "phone": "+12025550199", "email": None}

    # The next call from that number finds the customer instead of creating another.
    async with uow_factory() as uow:
        again = await resolve_phone(uow, "202 555 0199", region=REGION)
        assert (again.created, again.customer.id) == (False, customer.id)
        await uow.commit()
    assert published.names() == ["customer.created"]


@pytest.mark.parametrize("how", ["rollback", "exception", "no commit"])
async def test_a_resolution_that_is_not_committed_leaves_nothing(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, how: str
) -> None:
    async def resolve(uow: UnitOfWork) -> None:
        result = await resolve_phone(uow, "(202) 555-0177", region=REGION)
        assert result.created

    if how == "exception":
        with pytest.raises(RuntimeError):
            async with uow_factory() as uow:
                await resolve(uow)
                raise RuntimeError("boom")
    else:
        async with uow_factory() as uow:
            await resolve(uow)
            if how == "rollback":
                await uow.rollback()

    assert published.events == []
    assert await _count(uow_factory, Customer) == 0
    assert await _count(uow_factory, CustomerPhone) == 0
    assert await _count(uow_factory, AuditEntry) == 0


async def test_invalid_phone_is_refused_before_touching_the_database(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(InvalidInput):
            await resolve_phone(uow, "555-01", region=REGION)
    assert await _count(uow_factory, Customer) == 0


async def test_concurrent_resolution_of_one_unknown_number_makes_one_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both units of work look the number up and find nothing before either inserts: the loser's
    # insert must hit the unique index (on PostgreSQL it waits for the winner's commit) and re-read.
    together = asyncio.Barrier(2)
    lookups: list[int | None] = []
    real_lookup = identity._customer_by_phone

    async def lookup_together(uow: UnitOfWork, e164: str) -> Customer | None:
        found = await real_lookup(uow, e164)
        lookups.append(found.id if found else None)
        if len(lookups) <= 2:
            await asyncio.wait_for(together.wait(), 10)
        return found

    monkeypatch.setattr(identity, "_customer_by_phone", lookup_together)

    async def deliver(raw: str) -> Resolution:
        async with uow_factory() as uow:
            result = await resolve_phone(uow, raw, region=REGION)
            await uow.commit()
            return result

    first, second = await asyncio.wait_for(
        asyncio.gather(deliver("(202) 555-0123"), deliver("+12025550123")), 30
    )

    assert lookups[:2] == [None, None]  # the race really happened
    assert sorted([first.created, second.created]) == [False, True]
    assert first.customer.id == second.customer.id
    assert await _count(uow_factory, Customer) == 1
    assert await _count(uow_factory, CustomerPhone) == 1
    assert await _count(uow_factory, AuditEntry) == 1
    assert published.names() == ["customer.created"]


# --- email ----------------------------------------------------------------------------------------


async def test_known_email_returns_its_customer_whatever_the_case(uow_factory: UnitOfWorkFactory) -> None:
    grace = await _known(uow_factory, "Grace Hopper", emails=["grace@navy.example"])
    async with uow_factory() as uow:
        found = await resolve_email(uow, "  GRACE@Navy.Example ")
        assert (found.created, found.customer.id) == (False, grace)
        assert uow.pending_events == ()


async def test_unknown_email_creates_a_pool_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        named = await resolve_email(uow, "Grace.Hopper+Work@GMAIL.com", display_name="  Grace Hopper ")
        anonymous = await resolve_email(uow, "someone@example.com")
        assert named.created and anonymous.created
        assert published.events == []
        await uow.commit()

    assert named.customer.display_name == "Grace Hopper"
    assert named.customer.owner_id is None
    assert anonymous.customer.display_name == "someone@example.com"
    assert published.names() == ["customer.created", "customer.created"]
    assert [e.payload["source"] for e in published.events] == ["email", "email"]
    async with uow_factory() as uow:
        email = await uow.session.scalar(
            select(CustomerEmail).where(CustomerEmail.customer_id == named.customer.id)
        )
        assert email is not None
        assert email.address == "grace.hopper+work@gmail.com"
        assert email.match_key == "gracehopper@gmail.com"
    [entry] = await _audit(uow_factory, named.customer.id)
    assert entry.action == "created"
    assert entry.changes == {"source": "email", "phone": None, "email": "grace.hopper+work@gmail.com"}


async def test_concurrent_resolution_of_one_unknown_email_makes_one_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async def deliver() -> Resolution:
        async with uow_factory() as uow:
            result = await resolve_email(uow, "race@example.com")
            await uow.commit()
            return result

    results = await asyncio.wait_for(asyncio.gather(*(deliver() for _ in range(4))), 30)
    assert sum(r.created for r in results) == 1
    assert len({r.customer.id for r in results}) == 1
    assert await _count(uow_factory, Customer) == 1
    assert published.names() == ["customer.created"]


# --- chat visitor ---------------------------------------------------------------------------------


async def test_visitor_email_wins_over_phone(uow_factory: UnitOfWorkFactory) -> None:
    by_email = await _known(uow_factory, "By email", emails=["visitor@example.com"])
    await _known(uow_factory, "By phone", phones=["(202) 555-0111"])
    async with uow_factory() as uow:
        found = await resolve_visitor(
            uow, region=REGION, name="V", email="Visitor@Example.com", phone="202-555-0111"
        )
        assert (found.created, found.customer.id) == (False, by_email)


async def test_visitor_known_by_phone_only(uow_factory: UnitOfWorkFactory) -> None:
    by_phone = await _known(uow_factory, "By phone", phones=["(202) 555-0111"])
    async with uow_factory() as uow:
        found = await resolve_visitor(uow, region=REGION, email="new@example.com", phone="+1 202 555 0111")
        assert (found.created, found.customer.id) == (False, by_phone)
        assert uow.pending_events == ()
        await uow.commit()
    assert await _count(uow_factory, Customer) == 1


async def test_unknown_visitor_with_an_email_becomes_a_chat_pool_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        found = await resolve_visitor(uow, region=REGION, name="Vera", email="vera@example.com")
        await uow.commit()
    assert found.created
    assert found.customer.display_name == "Vera"
    assert found.customer.owner_id is None
    assert [e.payload["source"] for e in published.events] == ["chat"]


async def test_unknown_visitor_with_a_phone_becomes_a_chat_pool_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        found = await resolve_visitor(uow, region=REGION, phone="(202) 555-0188")
        await uow.commit()
    assert found.created
    assert found.customer.display_name == "+12025550188"
    assert [e.payload["source"] for e in published.events] == ["chat"]


async def test_unknown_visitor_keeps_both_email_and_phone(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        found = await resolve_visitor(
            uow, region=REGION, name="Vic", email="vic@example.com", phone="(202) 555-0177"
        )
        await uow.commit()
    assert found.created
    async with uow_factory() as uow:
        by_phone = await resolve_phone(uow, "+12025550177", region=REGION)
        by_email = await resolve_email(uow, "VIC@example.com")
        await uow.commit()
    assert not by_phone.created and not by_email.created
    assert by_phone.customer.id == by_email.customer.id == found.customer.id
    assert published.names() == ["customer.created"]


async def test_anonymous_visitors_each_get_a_new_pool_customer(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher
) -> None:
    async with uow_factory() as uow:
        first = await resolve_visitor(uow, region=REGION)
        second = await resolve_visitor(uow, region=REGION, name="  Sam  ")
        assert published.events == []
        await uow.commit()
    assert first.created and second.created
    assert first.customer.id != second.customer.id
    assert first.customer.display_name == "Web visitor"
    assert second.customer.display_name == "Sam"
    assert published.names() == ["customer.created", "customer.created"]
    [entry] = await _audit(uow_factory, first.customer.id)
    assert entry.changes == {"source": "chat", "phone": None, "email": None}
