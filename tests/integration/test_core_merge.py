"""Finding duplicate customers and merging one into another."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.db import UnitOfWorkFactory
from crm_core.errors import Forbidden, InvalidInput, NotFound
from crm_core.models import AuditEntry, Customer, Interaction, Ticket
from crm_core.services.customer_card import card_by_phone
from crm_core.services.customers import create_customer, get_visible
from crm_core.services.duplicates import find_duplicates, merge_customers
from crm_core.services.identity import resolve_email, resolve_phone
from crm_core.services.interactions import log_interaction
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Channel, Direction
from crm_core.visibility import Viewer
from tests.conftest import RecordingPublisher, Staff


async def _new(
    uow_factory: UnitOfWorkFactory,
    name: str,
    *,
    phones: Sequence[str] = (),
    emails: Sequence[str] = (),
    **fields: Any,
) -> int:
    async with uow_factory() as uow:
        customer = await create_customer(
            uow, None, region="US", display_name=name, phones=phones, emails=emails, **fields
        )
        await uow.commit()
    return customer.id


async def _duplicates_of(uow_factory: UnitOfWorkFactory, viewer: Viewer, customer_id: int) -> list[Any]:
    async with uow_factory() as uow:
        return await find_duplicates(uow.session, viewer, customer_id)


# --- finding ------------------------------------------------------------------------------------


async def test_same_gmail_mailbox_written_differently(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    admin = Viewer.of(staff.admin)
    bob = await _new(uow_factory, "Bob Smith", emails=["bob.smith@gmail.com"])
    robert = await _new(uow_factory, "Robert S.", emails=["B.O.B.Smith+crm@GoogleMail.com"])
    await _new(uow_factory, "Bobby", emails=["bob.smith@example.com"])  # another mailbox
    await _new(uow_factory, "Other", emails=["bobsmith2@gmail.com"])

    [candidate] = await _duplicates_of(uow_factory, admin, bob)
    assert candidate.customer.id == robert
    assert candidate.score == 1.0
    assert candidate.reasons == ["same mailbox as b.o.b.smith+crm@googlemail.com"]

    [back] = await _duplicates_of(uow_factory, admin, robert)
    assert back.customer.id == bob


async def test_similar_name_at_the_same_company(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    admin = Viewer.of(staff.admin)
    ada = await _new(uow_factory, "Ada Lovelace", company="Acme Inc")
    same = await _new(uow_factory, "ADA LOVELACE", company="ACME")
    reordered = await _new(uow_factory, "Lovelace, Ada", company="Acme, Inc.")
    await _new(uow_factory, "Ada Lovelace", company="Initech")  # same name, other company
    await _new(uow_factory, "Ada Byron", company="Acme")  # same company, other person
    await _new(uow_factory, "Ada Lovelace")  # no company

    found = await _duplicates_of(uow_factory, admin, ada)
    assert [c.customer.id for c in found] == sorted([same, reordered])
    assert all(c.score == 1.0 for c in found)
    by_id = {c.customer.id: c for c in found}
    assert by_id[same].reasons == ["similar name (100%) at ACME"]
    assert by_id[reordered].reasons == ["similar name (100%) at Acme, Inc."]


async def test_a_typo_in_the_name_is_still_a_candidate(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    admin = Viewer.of(staff.admin)
    grace = await _new(uow_factory, "Grace Hopper", company="Navy Ltd")
    typo = await _new(uow_factory, "Grace Hoper", company="navy")
    [candidate] = await _duplicates_of(uow_factory, admin, grace)
    assert candidate.customer.id == typo
    assert 0.85 <= candidate.score < 1.0


async def test_merged_and_invisible_customers_are_not_candidates(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    mine = await _new(uow_factory, "Ada Lovelace", emails=["ada@example.com"], owner_id=staff.red_1.id)
    theirs = await _new(uow_factory, "Ada Lovelace", emails=["ada+x@example.com"], owner_id=staff.blue_1.id)
    gone = await _new(uow_factory, "Ada Lovelace", emails=["ada+y@example.com"])
    async with uow_factory() as uow:
        await merge_customers(uow, admin, mine, gone)
        await uow.commit()

    # red-1 cannot see blue-1's customer; the merged one is gone for everybody.
    assert await _duplicates_of(uow_factory, Viewer.of(staff.red_1), mine) == []
    found = await _duplicates_of(uow_factory, admin, mine)
    assert [c.customer.id for c in found] == [theirs]
    assert found[0].reasons == ["same mailbox as ada+x@example.com", "similar name (100%)"]


# --- merging ------------------------------------------------------------------------------------


async def test_merge_moves_everything_onto_the_survivor(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    survivor_id = await _new(
        uow_factory,
        "Ada Lovelace",
        phones=["(202) 555-0101"],
        emails=["ada@example.com"],
        tags=["vip", "b2b"],
        custom_fields={"plan": "gold"},
    )
    merged_id = await _new(
        uow_factory,
        "A. Lovelace",
        phones=["(202) 555-0102", "(202) 555-0103"],
        emails=["ada.lovelace@gmail.com"],
        tags=["b2b", "churn-risk"],
        company="Acme",
        owner_id=staff.red_1.id,
        custom_fields={"plan": "silver", "crm_id": "A-17"},
    )
    async with uow_factory() as uow:
        for n in range(2):
            await log_interaction(
                uow,
                channel=Channel.VOICE,
                direction=Direction.INBOUND,
                customer_id=merged_id,
                external_id=f"CA{n}",
            )
            await open_ticket(uow, None, customer_id=merged_id, subject=f"T{n}", sla=SlaPolicy())
        await log_interaction(
            uow, channel=Channel.SMS, direction=Direction.INBOUND, customer_id=survivor_id, external_id="SM1"
        )
        await uow.commit()
    published.events.clear()

    async with uow_factory() as uow:
        survivor = await merge_customers(uow, admin, survivor_id, merged_id)
        assert published.events == []
        await uow.commit()

    assert survivor.id == survivor_id
    assert [p.e164 for p in survivor.phones] == [
        "+12025550101",
        "+12025550102",
        "+12025550103",
    ]
    assert [e.address for e in survivor.emails] == ["ada@example.com", "ada.lovelace@gmail.com"]
    assert survivor.tags == ["b2b", "churn-risk", "vip"]
    assert survivor.custom_fields == {"plan": "gold", "crm_id": "A-17"}  # the survivor's values win
    assert survivor.company == "Acme"
    assert survivor.owner_id == staff.red_1.id
    assert published.names() == ["customer.merged"]
    assert published.events[0].payload == {"customer_id": survivor_id, "merged_id": merged_id}

    async with uow_factory() as uow:
        s = uow.session
        merged = await s.get_one(Customer, merged_id)
        assert merged.merged_into_id == survivor_id
        assert set(await s.scalars(select(Interaction.customer_id))) == {survivor_id}
        assert set(await s.scalars(select(Ticket.customer_id))) == {survivor_id}
        audit = {
            (e.entity_id, e.action): e
            for e in await s.scalars(
                select(AuditEntry).where(AuditEntry.entity_type == "customer", AuditEntry.action != "created")
            )
        }
    assert set(audit) == {(survivor_id, "merged"), (merged_id, "merged_into")}
    assert audit[(survivor_id, "merged")].actor_id == staff.admin.id
    assert audit[(survivor_id, "merged")].changes == {
        "merged_id": merged_id,
        "phones": ["+12025550102", "+12025550103"],
        "emails": ["ada.lovelace@gmail.com"],
        "customer_phones_moved": 2,
        "customer_emails_moved": 1,
        "interactions_moved": 2,
        "tickets_moved": 2,
        "merged": {"display_name": "A. Lovelace", "company": "Acme", "owner_id": staff.red_1.id},
    }
    assert audit[(merged_id, "merged_into")].changes == {"survivor_id": survivor_id}

    # Every later contact through the merged customer's points lands on the survivor.
    async with uow_factory() as uow:
        assert (await resolve_phone(uow, "202-555-0103", region="US")).customer.id == survivor_id
        assert (await resolve_email(uow, "Ada.Lovelace@gmail.com")).customer.id == survivor_id
        card = await card_by_phone(uow.session, "+12025550102")
        assert card is not None and card.customer_id == survivor_id
        assert len(card.recent_interactions) == 3
        assert len(card.open_tickets) == 2
        with pytest.raises(NotFound):
            await get_visible(uow.session, admin, merged_id)


async def test_merging_into_itself_is_refused(
    uow_factory: UnitOfWorkFactory, published: RecordingPublisher, staff: Staff
) -> None:
    ada = await _new(uow_factory, "Ada", phones=["(202) 555-0101"])
    published.events.clear()
    async with uow_factory() as uow:
        with pytest.raises(InvalidInput) as info:
            await merge_customers(uow, Viewer.of(staff.admin), ada, ada)
        assert info.value.field == "merged_id"
        await uow.commit()
    assert published.events == []
    async with uow_factory() as uow:
        customer = await uow.session.get_one(Customer, ada)
        assert customer.merged_into_id is None


async def test_an_already_merged_customer_cannot_be_merged_again(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    a, b, c = [await _new(uow_factory, name) for name in ("A", "B", "C")]
    async with uow_factory() as uow:
        await merge_customers(uow, admin, a, b)
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await merge_customers(uow, admin, c, b)
        with pytest.raises(NotFound):
            await merge_customers(uow, admin, b, c)


async def test_an_agent_cannot_merge_a_customer_they_cannot_see(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    mine = await _new(uow_factory, "Mine", owner_id=staff.red_1.id)
    theirs = await _new(uow_factory, "Theirs", owner_id=staff.blue_1.id)
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await merge_customers(uow, Viewer.of(staff.red_1), mine, theirs)
    async with uow_factory() as uow:
        assert (await uow.session.get_one(Customer, theirs)).merged_into_id is None


async def test_an_agent_merges_only_their_own_or_pool_customers(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    red_1 = Viewer.of(staff.red_1)
    mine = await _new(uow_factory, "Mine", owner_id=staff.red_1.id)
    pooled = await _new(uow_factory, "Pooled")
    colleague = await _new(uow_factory, "Colleague's", owner_id=staff.red_2.id)
    async with uow_factory() as uow:
        # red_1 sees the colleague's customer through a ticket assigned to red_1 ...
        await open_ticket(
            uow, None, customer_id=colleague, subject="Help", sla=SlaPolicy(), assignee_id=staff.red_1.id
        )
        await uow.commit()
    async with uow_factory() as uow:
        await get_visible(uow.session, red_1, colleague)
        # ... but seeing is not owning.
        with pytest.raises(Forbidden):
            await merge_customers(uow, red_1, mine, colleague)
        with pytest.raises(Forbidden):
            await merge_customers(uow, red_1, colleague, mine)
    async with uow_factory() as uow:
        await merge_customers(uow, red_1, mine, pooled)
        await uow.commit()
    async with uow_factory() as uow:
        await merge_customers(uow, Viewer.of(staff.red_lead), mine, colleague)
        await uow.commit()
        assert (await uow.session.get_one(Customer, colleague)).merged_into_id == mine


async def test_earlier_merges_follow_the_customer_into_its_survivor(
    uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    admin = Viewer.of(staff.admin)
    a, b, c = [await _new(uow_factory, name) for name in ("A", "B", "C")]
    async with uow_factory() as uow:
        await merge_customers(uow, admin, b, c)
        await uow.commit()
    async with uow_factory() as uow:
        await merge_customers(uow, admin, a, b)
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.session.get_one(Customer, b)).merged_into_id == a
        assert (await uow.session.get_one(Customer, c)).merged_into_id == a
