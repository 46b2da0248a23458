"""REST API: customers (create, read, update, owner rules, search, pages, timeline, claim,
duplicates, merge)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, AuditEntry
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from tests.conftest import PASSWORD, Session, SignIn, Staff

API = "/api/v1"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    err: dict[str, Any] = body["error"]
    return err


async def new_customer(me: Session, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = await ok(await me.post(f"{API}/customers", json=fields), 201)
    return body


async def log(
    uow_factory: UnitOfWorkFactory, customer_id: int, channel: Channel, minutes: int, subject: str = ""
) -> int:
    async with uow_factory() as uow:
        logged = await log_interaction(
            uow,
            channel=channel,
            direction=Direction.INBOUND,
            customer_id=customer_id,
            started_at=T0 + timedelta(minutes=minutes),
            subject=subject or f"{channel} at +{minutes}",
        )
        await uow.commit()
    return logged.interaction.id


async def audit_actions(uow_factory: UnitOfWorkFactory, customer_id: int) -> list[AuditEntry]:
    async with uow_factory() as uow:
        rows = await uow.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "customer", AuditEntry.entity_id == customer_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


# --- create and read ------------------------------------------------------------------------


async def test_create_normalises_phones_and_emails(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    created = await new_customer(
        me,
        display_name="  Ada Lovelace ",
        company="Analytical Engines",
        phones=["(202) 555-0143", "+1 202.555.0143", "+44 20 7946 0958"],
        emails=[" Ada.Lovelace@Example.COM", "ada.lovelace@example.com", "ada@BÜCHER.example"],
        tags=["vip", "math"],
        consent={"sms": True, "email": False},
        custom_fields={"account": "A-1"},
        timezone="Europe/London",
        preferred_language="en",
    )
    assert created["display_name"] == "Ada Lovelace"
    # Two spellings of one US number collapse into one E.164 entry.
    assert [p["e164"] for p in created["phones"]] == ["+12025550143", "+442079460958"]
    assert [e["address"] for e in created["emails"]] == [
        "ada.lovelace@example.com",
        "ada@xn--bcher-kva.example",
    ]
    assert created["owner_id"] is None
    assert created["tags"] == ["vip", "math"]
    assert created["consent"] == {"sms": True, "email": False}
    assert created["custom_fields"] == {"account": "A-1"}

    read = await ok(await me.get(f"{API}/customers/{created['id']}"))
    assert read == created


async def test_create_with_owner_and_conflicting_contact_point(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    mine = await new_customer(me, display_name="Mine", owner_id=staff.red_1.id, phones=["202-555-0143"])
    assert mine["owner_id"] == staff.red_1.id
    # The same number in another spelling already belongs to a customer.
    resp = await me.post(f"{API}/customers", json={"display_name": "Other", "phones": ["+12025550143"]})
    await error(resp, 409, "conflict")
    await new_customer(me, display_name="Email owner", emails=["x@example.com"])
    resp = await me.post(f"{API}/customers", json={"display_name": "Other", "emails": ["X@EXAMPLE.com"]})
    await error(resp, 409, "conflict")
    # A refused create leaves no half-made customer behind.
    page = await ok(await me.get(f"{API}/customers", params={"name": "Other"}))
    assert page["total"] == 0


async def test_read_unknown_customer_is_404(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.admin)
    await error(await me.get(f"{API}/customers/999999"), 404, "not_found")


# --- update ---------------------------------------------------------------------------------


async def test_update_fields_and_contact_points(
    staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    me = await sign_in(staff.red_1)
    c = await new_customer(
        me,
        display_name="Grace Hopper",
        company="Navy",
        owner_id=staff.red_1.id,
        phones=["202-555-0143"],
        emails=["grace@navy.mil"],
        tags=["a"],
    )
    updated = await ok(
        await me.patch(
            f"{API}/customers/{c['id']}",
            json={
                "display_name": " Rear Admiral Grace Hopper ",
                "tags": ["cobol", "vip"],
                "segment": "gov",
                "consent": {"voice": True},
                "add_phones": ["(415) 555-0132"],
                "add_emails": ["Grace@Example.org"],
                "remove_phones": ["+1 (202) 555-0143"],  # another spelling of the stored number
                "remove_emails": ["GRACE@navy.mil"],
            },
        )
    )
    assert updated["display_name"] == "Rear Admiral Grace Hopper"
    assert updated["company"] == "Navy"  # not sent, not changed
    assert updated["tags"] == ["cobol", "vip"]
    assert updated["segment"] == "gov"
    assert updated["consent"] == {"voice": True}
    assert [p["e164"] for p in updated["phones"]] == ["+14155550132"]
    assert [e["address"] for e in updated["emails"]] == ["grace@example.org"]
    assert updated["updated_at"] >= c["updated_at"]
    assert await ok(await me.get(f"{API}/customers/{c['id']}")) == updated

    # Null clears an optional field.
    cleared = await ok(await me.patch(f"{API}/customers/{c['id']}", json={"company": None}))
    assert cleared["company"] is None

    # The removed number is free again for another customer.
    other = await new_customer(me, display_name="Other", phones=["202-555-0143"])
    assert other["phones"][0]["e164"] == "+12025550143"

    entries = await audit_actions(uow_factory, c["id"])
    assert [e.action for e in entries] == ["created", "updated", "updated"]
    assert entries[1].actor_id == staff.red_1.id
    assert entries[1].changes["removed_phones"] == ["+12025550143"]
    assert entries[1].changes["added_emails"] == ["grace@example.org"]


@pytest.mark.parametrize("field", ["display_name", "tags", "consent", "custom_fields"])
async def test_update_refuses_null_for_required_fields(staff: Staff, sign_in: SignIn, field: str) -> None:
    me = await sign_in(staff.red_1)
    c = await new_customer(me, display_name="Someone")
    err = await error(await me.patch(f"{API}/customers/{c['id']}", json={field: None}), 422, "invalid_input")
    assert field in err["fields"]
    assert (await ok(await me.get(f"{API}/customers/{c['id']}")))["display_name"] == "Someone"


async def test_adding_a_phone_of_another_customer_is_a_conflict(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    await new_customer(me, display_name="First", phones=["202-555-0143"])
    second = await new_customer(me, display_name="Second")
    resp = await me.patch(f"{API}/customers/{second['id']}", json={"add_phones": ["2025550143"]})
    await error(resp, 409, "conflict")
    assert (await ok(await me.get(f"{API}/customers/{second['id']}")))["phones"] == []


# --- owner rules ----------------------------------------------------------------------------

# (actor, current owner, new owner) -> expected status; agents are named as in the staff
# fixture, None is the shared pool.
OWNER_CHANGES = {
    ("red_1", "red_1", "red_2"): 403,  # an agent may not give a customer to a colleague
    ("red_1", "red_1", "blue_1"): 403,
    ("red_1", "red_1", None): 200,  # the owner may release to the pool
    ("red_1", None, "red_1"): 200,  # and take from the pool
    ("red_1", None, "red_2"): 403,
    ("red_lead", "red_1", "red_2"): 200,  # a supervisor moves customers within the team
    ("red_lead", "red_1", "red_lead"): 200,
    ("red_lead", "red_1", None): 200,
    ("red_lead", "red_1", "blue_1"): 403,  # but not to another team
    ("red_lead", None, "blue_lead"): 403,
    ("admin", "red_1", "blue_1"): 200,  # an admin anywhere
    ("admin", None, "blue_lead"): 200,
}

# (actor, owner given on create) -> expected status
OWNER_ON_CREATE = {
    ("red_1", "red_1"): 201,
    ("red_1", "red_2"): 403,
    ("red_lead", "red_2"): 201,
    ("red_lead", "blue_1"): 403,
    ("admin", "blue_1"): 201,
}


async def test_owner_change_rules(staff: Staff, sign_in: SignIn) -> None:
    def agent_id(name: str | None) -> int | None:
        return None if name is None else getattr(staff, name).id

    admin = await sign_in(staff.admin)
    sessions = {name: await sign_in(getattr(staff, name)) for name in ("red_1", "red_lead", "admin")}
    outcome = {}
    for actor, owner, new_owner in OWNER_CHANGES:
        c = await new_customer(admin, display_name="Owned", owner_id=agent_id(owner))
        resp = await sessions[actor].patch(
            f"{API}/customers/{c['id']}", json={"owner_id": agent_id(new_owner)}
        )
        body = await resp.json()
        outcome[(actor, owner, new_owner)] = resp.status
        stored = await ok(await admin.get(f"{API}/customers/{c['id']}"))
        if resp.status == 200:
            assert body["owner_id"] == stored["owner_id"] == agent_id(new_owner)
        else:
            assert body["error"]["code"] == "forbidden"
            assert stored["owner_id"] == agent_id(owner)
    assert outcome == OWNER_CHANGES


async def test_owner_rules_on_create(staff: Staff, sign_in: SignIn) -> None:
    outcome = {}
    for actor, owner in OWNER_ON_CREATE:
        me = await sign_in(getattr(staff, actor))
        owner_id = getattr(staff, owner).id
        resp = await me.post(f"{API}/customers", json={"display_name": f"New {actor}", "owner_id": owner_id})
        body = await resp.json()
        outcome[(actor, owner)] = resp.status
        if resp.status == 201:
            assert body["owner_id"] == owner_id
        else:
            assert body["error"]["code"] == "forbidden"
    assert outcome == OWNER_ON_CREATE
    admin = await sign_in(staff.admin)
    assert (await ok(await admin.get(f"{API}/customers")))["total"] == 3


async def test_agent_cannot_take_a_colleagues_customer_through_a_ticket(
    staff: Staff, sign_in: SignIn
) -> None:
    """red_2 sees blue_1's customer because of an assigned ticket; seeing is not owning."""
    admin = await sign_in(staff.admin)
    c = await new_customer(admin, display_name="Blue's", owner_id=staff.blue_1.id)
    await ok(
        await admin.post(
            f"{API}/tickets", json={"customer_id": c["id"], "subject": "x", "assignee_id": staff.red_2.id}
        ),
        201,
    )
    me = await sign_in(staff.red_2)
    await ok(await me.get(f"{API}/customers/{c['id']}"))
    await error(
        await me.patch(f"{API}/customers/{c['id']}", json={"owner_id": staff.red_2.id}), 403, "forbidden"
    )
    await error(await me.patch(f"{API}/customers/{c['id']}", json={"owner_id": None}), 403, "forbidden")
    await error(await me.post(f"{API}/customers/{c['id']}/claim"), 409, "conflict")
    assert (await ok(await admin.get(f"{API}/customers/{c['id']}")))["owner_id"] == staff.blue_1.id


async def test_owner_must_be_an_active_agent(
    staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    admin = await sign_in(staff.admin)
    c = await new_customer(admin, display_name="Someone")
    err = await error(
        await admin.patch(f"{API}/customers/{c['id']}", json={"owner_id": 999999}), 422, "invalid_input"
    )
    assert "owner_id" in err["fields"]
    async with uow_factory() as uow:
        (await uow.session.get_one(Agent, staff.red_2.id)).active = False
        await uow.commit()
    resp = await admin.post(f"{API}/customers", json={"display_name": "X", "owner_id": staff.red_2.id})
    assert "owner_id" in (await error(resp, 422, "invalid_input"))["fields"]


# --- search and pages -----------------------------------------------------------------------


async def _search_fixture(me: Session, staff: Staff) -> dict[str, int]:
    ada = await new_customer(
        me,
        display_name="Ada Lovelace",
        company="Analytical Engines",
        owner_id=staff.red_1.id,
        phones=["(202) 555-0143"],
        emails=["ada@example.com"],
    )
    grace = await new_customer(
        me,
        display_name="Grace Hopper",
        company="US Navy",
        phones=["+44 20 7946 0958"],
        emails=["grace@navy.mil"],
    )
    alan = await new_customer(me, display_name="Alan Turing", company="Bletchley 100%_Park")
    return {"ada": ada["id"], "grace": grace["id"], "alan": alan["id"]}


# Query -> the customers found, in order; OWNER stands for red_1's id.
SEARCHES: list[tuple[dict[str, str], list[str]]] = [
    ({}, ["ada", "grace", "alan"]),
    ({"name": "LOVEL"}, ["ada"]),
    ({"name": "a"}, ["ada", "grace", "alan"]),
    ({"name": "nobody"}, []),
    ({"phone": "202.555.0143"}, ["ada"]),
    ({"phone": "+1 (202) 555-0143"}, ["ada"]),
    ({"phone": "2025550143"}, ["ada"]),
    ({"phone": "+442079460958"}, ["grace"]),
    ({"phone": "(415) 555-0132"}, []),
    ({"email": "ADA@Example.com"}, ["ada"]),
    ({"email": " grace@navy.mil "}, ["grace"]),
    ({"email": "ada@example.org"}, []),
    ({"q": "turing"}, ["alan"]),
    ({"q": "navy"}, ["grace"]),  # company
    ({"q": "grace@"}, ["grace"]),  # email prefix
    ({"q": "202-555-0143"}, ["ada"]),  # phone in any format
    ({"q": "100%_"}, ["alan"]),  # LIKE wildcards are taken literally
    ({"q": "%"}, ["alan"]),
    ({"pool": "true"}, ["grace", "alan"]),
    ({"pool": "false"}, ["ada"]),
    ({"q": "a", "pool": "true"}, ["grace", "alan"]),
    ({"owner_id": "OWNER"}, ["ada"]),
]


async def test_search(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    ids = await _search_fixture(me, staff)
    names = {v: k for k, v in ids.items()}
    found: dict[str, list[str]] = {}
    for params, _ in SEARCHES:
        query = {k: str(staff.red_1.id) if v == "OWNER" else v for k, v in params.items()}
        page = await ok(await me.get(f"{API}/customers", params=query))
        assert page["total"] == len(page["items"])
        found[repr(params)] = [names[c["id"]] for c in page["items"]]
    assert found == {repr(params): expected for params, expected in SEARCHES}


async def test_search_with_invalid_phone_or_email_is_422(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    err = await error(await me.get(f"{API}/customers", params={"phone": "12"}), 422, "invalid_input")
    assert "phone" in err["fields"]
    err = await error(await me.get(f"{API}/customers", params={"email": "nope"}), 422, "invalid_input")
    assert "email" in err["fields"]


async def test_pages(staff: Staff, sign_in: SignIn, settings: Settings) -> None:
    me = await sign_in(staff.red_1)
    ids = [(await new_customer(me, display_name=f"Customer {i}"))["id"] for i in range(7)]
    first = await ok(await me.get(f"{API}/customers", params={"limit": "3"}))
    assert (first["total"], first["limit"], first["offset"]) == (7, 3, 0)
    second = await ok(await me.get(f"{API}/customers", params={"limit": "3", "offset": "3"}))
    last = await ok(await me.get(f"{API}/customers", params={"limit": "3", "offset": "6"}))
    beyond = await ok(await me.get(f"{API}/customers", params={"limit": "3", "offset": "70"}))
    seen = [c["id"] for page in (first, second, last) for c in page["items"]]
    assert seen == ids
    assert beyond["items"] == [] and beyond["total"] == 7
    default = await ok(await me.get(f"{API}/customers"))
    assert default["limit"] == settings.crm.page_size
    capped = await ok(await me.get(f"{API}/customers", params={"limit": str(settings.crm.max_page_size + 1)}))
    assert capped["limit"] == settings.crm.max_page_size


@pytest_asyncio.fixture(loop_scope="session")
async def small_pages(
    settings: Settings, uow_factory: UnitOfWorkFactory
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings.with_overrides(crm={"page_size": 2, "max_page_size": 3}))
    async with TestClient(TestServer(app)) as small:
        yield small


async def test_limit_is_capped_by_max_page_size(staff: Staff, small_pages: TestClient[Any, Any]) -> None:
    resp = await small_pages.post(
        f"{API}/auth/login", json={"login": staff.red_1.login, "password": PASSWORD}
    )
    body = await ok(resp)
    me = Session(small_pages, body["csrf_token"], resp.cookies["cc_session"].value)
    small_pages.session.cookie_jar.clear()
    for i in range(5):
        await new_customer(me, display_name=f"Customer {i}")
    default = await ok(await me.get(f"{API}/customers"))
    assert (len(default["items"]), default["limit"], default["total"]) == (2, 2, 5)
    capped = await ok(await me.get(f"{API}/customers", params={"limit": "100"}))
    assert (len(capped["items"]), capped["limit"], capped["total"]) == (3, 3, 5)


# --- timeline -------------------------------------------------------------------------------


async def test_timeline_newest_first_with_channel_filter(
    staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    me = await sign_in(staff.red_1)
    c = await new_customer(me, display_name="Ada", owner_id=staff.red_1.id)
    other = await new_customer(me, display_name="Other", owner_id=staff.red_1.id)
    voice = await log(uow_factory, c["id"], Channel.VOICE, 0)
    email = await log(uow_factory, c["id"], Channel.EMAIL, 10)
    sms = await log(uow_factory, c["id"], Channel.SMS, 20)
    chat = await log(uow_factory, c["id"], Channel.CHAT, 5)
    await log(uow_factory, other["id"], Channel.EMAIL, 30)

    url = f"{API}/customers/{c['id']}/timeline"
    everything = await ok(await me.get(url))
    assert [i["id"] for i in everything["items"]] == [sms, email, chat, voice]
    assert everything["total"] == 4
    first = everything["items"][-1]
    assert first["channel"] == "voice" and first["direction"] == "inbound"
    assert first["customer_id"] == c["id"] and first["metadata"] == {}
    assert datetime.fromisoformat(first["started_at"]) == T0

    only_email = await ok(await me.get(url, params={"channel": "email"}))
    assert [i["id"] for i in only_email["items"]] == [email]
    two = await ok(await me.get(f"{url}?channel=voice&channel=sms"))
    assert [i["id"] for i in two["items"]] == [sms, voice]
    assert two["total"] == 2
    paged = await ok(await me.get(url, params={"limit": "2", "offset": "1"}))
    assert [i["id"] for i in paged["items"]] == [email, chat]
    assert paged["total"] == 4
    err = await error(await me.get(url, params={"channel": "fax"}), 422, "invalid_input")
    assert any(k.startswith("channel") for k in err["fields"])
    await error(await me.get(f"{API}/customers/999999/timeline"), 404, "not_found")


async def test_interactions_list_and_read(
    staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    me = await sign_in(staff.red_1)
    c = await new_customer(me, display_name="Ada", owner_id=staff.red_1.id)
    other = await new_customer(me, display_name="Other", owner_id=staff.red_1.id)
    ticket = await ok(await me.post(f"{API}/tickets", json={"customer_id": c["id"], "subject": "x"}), 201)
    async with uow_factory() as uow:
        call = await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.OUTBOUND,
            customer_id=c["id"],
            agent_id=staff.red_1.id,
            ticket_id=ticket["id"],
            external_id="CA123",
            started_at=T0,
            duration_seconds=42,
            summary="called back",
            meta={"from": "+12025550143"},
        )
        await uow.commit()
    sms = await log(uow_factory, c["id"], Channel.SMS, 10)
    mail = await log(uow_factory, other["id"], Channel.EMAIL, 20)
    call_id = call.interaction.id

    url = f"{API}/interactions"
    cases = {
        "all": ({}, [mail, sms, call_id]),
        "channel": ({"channel": "sms"}, [sms]),
        "customer": ({"customer_id": str(other["id"])}, [mail]),
        "ticket": ({"ticket_id": str(ticket["id"])}, [call_id]),
        "agent": ({"agent_id": str(staff.red_1.id)}, [call_id]),
        "page": ({"limit": "1", "offset": "1"}, [sms]),
    }
    found = {}
    for name, (params, _) in cases.items():
        page = await ok(await me.get(url, params=params))
        found[name] = [i["id"] for i in page["items"]]
    assert found == {name: expected for name, (_, expected) in cases.items()}

    detail = await ok(await me.get(f"{url}/{call_id}"))
    assert {k: detail[k] for k in ("channel", "direction", "customer_id", "agent_id", "ticket_id")} == {
        "channel": "voice",
        "direction": "outbound",
        "customer_id": c["id"],
        "agent_id": staff.red_1.id,
        "ticket_id": ticket["id"],
    }
    assert (detail["external_id"], detail["duration_seconds"], detail["summary"]) == (
        "CA123",
        42,
        "called back",
    )
    assert detail["metadata"] == {"from": "+12025550143"}
    await error(await me.get(f"{url}/999999"), 404, "not_found")


# --- claim ----------------------------------------------------------------------------------


async def test_claim_from_the_pool(staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory) -> None:
    red_1 = await sign_in(staff.red_1)
    c = await new_customer(red_1, display_name="Pooled")
    assert c["owner_id"] is None
    claimed = await ok(await red_1.post(f"{API}/customers/{c['id']}/claim"))
    assert claimed["owner_id"] == staff.red_1.id
    # Claiming one's own customer again changes nothing.
    assert (await ok(await red_1.post(f"{API}/customers/{c['id']}/claim")))["owner_id"] == staff.red_1.id
    # A supervisor sees the customer but cannot take it: it has an owner.
    lead = await sign_in(staff.red_lead)
    await error(await lead.post(f"{API}/customers/{c['id']}/claim"), 409, "conflict")
    # red_2 no longer sees it at all.
    red_2 = await sign_in(staff.red_2)
    await error(await red_2.post(f"{API}/customers/{c['id']}/claim"), 404, "not_found")
    pool = await ok(await red_2.get(f"{API}/customers", params={"pool": "true"}))
    assert pool["total"] == 0
    actions = [(e.action, e.actor_id, e.changes) for e in await audit_actions(uow_factory, c["id"])]
    assert actions[-1] == ("claimed", staff.red_1.id, {"owner_id": [None, staff.red_1.id]})
    assert [a for a, _, _ in actions].count("claimed") == 1


# --- duplicates -----------------------------------------------------------------------------


async def test_duplicates(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.admin)
    ada = await new_customer(
        me, display_name="Ada Lovelace", company="Analytical Engines Ltd", emails=["ada.lovelace@gmail.com"]
    )
    same_mailbox = await new_customer(
        me, display_name="A. Byron", emails=["AdaLovelace+crm@googlemail.com"], phones=["202-555-0143"]
    )
    similar_name = await new_customer(me, display_name="Lovelace, Ada", company="Analytical Engines")
    typo = await new_customer(me, display_name="Ada Lovelacee", company="analytical engines, ltd.")
    other_company = await new_customer(me, display_name="Ada Lovelace", company="Difference Corp")
    same_company_other_name = await new_customer(
        me, display_name="Charles Babbage", company="Analytical Engines"
    )
    other_mailbox = await new_customer(me, display_name="Someone", emails=["ada.lovelace@example.com"])

    found = await ok(await me.get(f"{API}/customers/{ada['id']}/duplicates"))
    by_id = {d["customer"]["id"]: d for d in found["items"]}
    assert set(by_id) == {same_mailbox["id"], similar_name["id"], typo["id"]}
    assert by_id[same_mailbox["id"]]["score"] == 1.0
    assert any("mailbox" in r for r in by_id[same_mailbox["id"]]["reasons"])
    assert by_id[same_mailbox["id"]]["customer"]["phones"] == [{"e164": "+12025550143", "label": None}]
    assert any("similar name" in r for r in by_id[similar_name["id"]]["reasons"])
    assert 0.85 <= by_id[typo["id"]]["score"] < 1.0
    scores = [d["score"] for d in found["items"]]
    assert scores == sorted(scores, reverse=True)
    for unrelated in (other_company, same_company_other_name, other_mailbox):
        assert unrelated["id"] not in by_id

    # The relation is found from the other side too.
    back = await ok(await me.get(f"{API}/customers/{same_mailbox['id']}/duplicates"))
    assert [d["customer"]["id"] for d in back["items"]] == [ada["id"]]
    lonely = await ok(await me.get(f"{API}/customers/{other_mailbox['id']}/duplicates"))
    assert lonely["items"] == []


async def test_duplicates_only_among_visible_customers(staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    mine = await new_customer(
        admin, display_name="Ada Lovelace", owner_id=staff.red_1.id, emails=["ada@gmail.com"]
    )
    await new_customer(
        admin, display_name="Ada Lovelace", owner_id=staff.blue_1.id, emails=["a.da@gmail.com"]
    )
    me = await sign_in(staff.red_1)
    assert (await ok(await me.get(f"{API}/customers/{mine['id']}/duplicates")))["items"] == []
    assert len((await ok(await admin.get(f"{API}/customers/{mine['id']}/duplicates")))["items"]) == 1


# --- merge ----------------------------------------------------------------------------------


async def test_merge_moves_everything(staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory) -> None:
    me = await sign_in(staff.red_1)
    survivor = await new_customer(
        me,
        display_name="Ada Lovelace",
        owner_id=staff.red_1.id,
        phones=["202-555-0143"],
        emails=["ada@example.com"],
        tags=["vip"],
        custom_fields={"tier": "gold"},
    )
    merged = await new_customer(
        me,
        display_name="Ada L.",
        company="Analytical Engines",
        phones=["415-555-0132"],
        emails=["ada.lovelace@gmail.com"],
        tags=["math", "vip"],
        custom_fields={"tier": "silver", "source": "import"},
    )
    await log(uow_factory, survivor["id"], Channel.VOICE, 0)
    moved_calls = [await log(uow_factory, merged["id"], Channel.EMAIL, m) for m in (5, 10)]
    ticket_s = await ok(
        await me.post(f"{API}/tickets", json={"customer_id": survivor["id"], "subject": "a"}), 201
    )
    ticket_m = await ok(
        await me.post(f"{API}/tickets", json={"customer_id": merged["id"], "subject": "b"}), 201
    )

    result = await ok(
        await me.post(f"{API}/customers/{survivor['id']}/merge", json={"merged_id": merged["id"]})
    )
    assert result["id"] == survivor["id"]
    assert sorted(p["e164"] for p in result["phones"]) == ["+12025550143", "+14155550132"]
    assert sorted(e["address"] for e in result["emails"]) == ["ada.lovelace@gmail.com", "ada@example.com"]
    assert result["tags"] == ["math", "vip"]
    assert result["custom_fields"] == {"tier": "gold", "source": "import"}  # the survivor's values win
    assert result["company"] == "Analytical Engines"
    assert result["owner_id"] == staff.red_1.id
    assert result["display_name"] == "Ada Lovelace"

    await error(await me.get(f"{API}/customers/{merged['id']}"), 404, "not_found")
    await error(await me.get(f"{API}/customers/{merged['id']}/timeline"), 404, "not_found")
    await error(await me.patch(f"{API}/customers/{merged['id']}", json={"segment": "x"}), 404, "not_found")
    listed = await ok(await me.get(f"{API}/customers"))
    assert [c["id"] for c in listed["items"]] == [survivor["id"]]

    timeline = await ok(await me.get(f"{API}/customers/{survivor['id']}/timeline"))
    assert timeline["total"] == 3
    assert set(moved_calls) <= {i["id"] for i in timeline["items"]}
    tickets = await ok(await me.get(f"{API}/tickets", params={"customer_id": str(survivor["id"])}))
    assert {t["id"] for t in tickets["items"]} == {ticket_s["id"], ticket_m["id"]}
    # Contact points resolve to the survivor now.
    by_phone = await ok(await me.get(f"{API}/customers", params={"phone": "4155550132"}))
    assert [c["id"] for c in by_phone["items"]] == [survivor["id"]]

    survivor_audit = await audit_actions(uow_factory, survivor["id"])
    entry = next(e for e in survivor_audit if e.action == "merged")
    assert entry.actor_id == staff.red_1.id
    assert entry.changes["merged_id"] == merged["id"]
    assert entry.changes["interactions_moved"] == 2
    assert entry.changes["tickets_moved"] == 1
    assert entry.changes["phones"] == ["+14155550132"]
    merged_audit = await audit_actions(uow_factory, merged["id"])
    assert merged_audit[-1].action == "merged_into"
    assert merged_audit[-1].changes == {"survivor_id": survivor["id"]}

    # Merging again, or into the merged record, finds nothing.
    resp = await me.post(f"{API}/customers/{survivor['id']}/merge", json={"merged_id": merged["id"]})
    await error(resp, 404, "not_found")
    resp = await me.post(f"{API}/customers/{merged['id']}/merge", json={"merged_id": survivor["id"]})
    await error(resp, 404, "not_found")


async def test_merge_into_itself_or_unknown(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    c = await new_customer(me, display_name="Ada")
    err = await error(
        await me.post(f"{API}/customers/{c['id']}/merge", json={"merged_id": c["id"]}), 422, "invalid_input"
    )
    assert "merged_id" in err["fields"]
    await error(
        await me.post(f"{API}/customers/{c['id']}/merge", json={"merged_id": 999999}), 404, "not_found"
    )
    err = await error(await me.post(f"{API}/customers/{c['id']}/merge", json={}), 422, "invalid_input")
    assert "merged_id" in err["fields"]
    assert (await ok(await me.get(f"{API}/customers/{c['id']}")))["display_name"] == "Ada"
