"""REST API: tickets (numbers, SLA due times, filters, updates, the status machine, assignment
rules, comments)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent
from crm_core.types import Priority
from tests.conftest import Session, SignIn, Staff

API = "/api/v1"


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["status"] == status and body["error"]["code"] == code, body
    err: dict[str, Any] = body["error"]
    return err


async def new_customer(me: Session, owner: Agent | None = None, name: str = "Ada") -> int:
    body = {"display_name": name, "owner_id": owner.id if owner else None}
    created = await ok(await me.post(f"{API}/customers", json=body), 201)
    customer_id: int = created["id"]
    return customer_id


async def new_ticket(me: Session, customer_id: int, subject: str = "Help", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = await ok(
        await me.post(f"{API}/tickets", json={"customer_id": customer_id, "subject": subject, **fields}), 201
    )
    return body


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


# --- create ---------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", ["low", "normal", "high", "urgent"])
async def test_create_sets_sla_due_times(
    staff: Staff, sign_in: SignIn, settings: Settings, priority: str
) -> None:
    me = await sign_in(staff.red_1)
    customer = await new_customer(me, staff.red_1)
    before = datetime.now().astimezone()
    t = await new_ticket(me, customer, "  Printer on fire  ", priority=priority, source_channel="email")
    after = datetime.now().astimezone()
    assert t["subject"] == "Printer on fire"
    assert (t["status"], t["priority"], t["source_channel"]) == ("new", priority, "email")
    assert (t["customer_id"], t["assignee_id"], t["team_id"]) == (customer, None, None)
    assert t["first_responded_at"] is t["resolved_at"] is t["closed_at"] is None
    created = at(t["created_at"])
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    sla = settings.crm.sla
    assert at(t["first_response_due_at"]) - created == timedelta(
        minutes=sla.first_response_minutes[Priority(priority)]
    )
    assert at(t["resolution_due_at"]) - created == timedelta(
        minutes=sla.resolution_minutes[Priority(priority)]
    )
    assert await ok(await me.get(f"{API}/tickets/{t['id']}")) == t


async def test_numbers_are_a_sequence_from_the_first_number(
    staff: Staff, sign_in: SignIn, settings: Settings
) -> None:
    red, blue = await sign_in(staff.red_1), await sign_in(staff.blue_1)
    red_customer, blue_customer = await new_customer(red, staff.red_1), await new_customer(blue, staff.blue_1)
    first = settings.crm.ticket_first_number
    assert (await new_ticket(red, red_customer))["number"] == first
    assert (await new_ticket(blue, blue_customer))["number"] == first + 1
    # A refused ticket does not use up a number.
    resp = await red.post(
        f"{API}/tickets", json={"customer_id": red_customer, "subject": "x", "assignee_id": staff.red_2.id}
    )
    await error(resp, 403, "forbidden")
    assert (await new_ticket(red, red_customer))["number"] == first + 2


async def test_create_refusals(staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory) -> None:
    me = await sign_in(staff.red_1)
    customer = await new_customer(me, staff.red_1)
    await error(
        await me.post(f"{API}/tickets", json={"customer_id": 999999, "subject": "x"}), 404, "not_found"
    )
    resp = await me.post(f"{API}/tickets", json={"customer_id": customer, "subject": "x", "team_id": 999999})
    assert "team_id" in (await error(resp, 422, "invalid_input"))["fields"]
    resp = await me.post(f"{API}/tickets", json={"customer_id": customer, "subject": "   "})
    assert "subject" in (await error(resp, 422, "invalid_input"))["fields"]
    resp = await me.post(f"{API}/tickets", json={"customer_id": customer, "subject": "x", "priority": "asap"})
    assert "priority" in (await error(resp, 422, "invalid_input"))["fields"]
    resp = await me.post(f"{API}/tickets", json={"subject": "x"})
    assert "customer_id" in (await error(resp, 422, "invalid_input"))["fields"]
    assert (await ok(await me.get(f"{API}/tickets")))["total"] == 0


# --- list and filters -----------------------------------------------------------------------


async def _ticket_set(staff: Staff, sign_in: SignIn) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    admin = await sign_in(staff.admin)
    ada = await new_customer(admin, staff.red_1, "Ada")
    bob = await new_customer(admin, staff.blue_1, "Bob")
    tickets = {
        "printer": await new_ticket(
            admin,
            ada,
            "Broken printer on floor 3",
            priority="high",
            assignee_id=staff.red_1.id,
            team_id=staff.red.id,
            source_channel="email",
        ),
        "invoice": await new_ticket(
            admin, ada, "Invoice 42 is wrong", priority="urgent", team_id=staff.red.id, source_channel="voice"
        ),
        "password": await new_ticket(
            admin,
            bob,
            "Password reset",
            assignee_id=staff.blue_1.id,
            team_id=staff.blue.id,
            source_channel="chat",
        ),
        "refund": await new_ticket(
            admin, bob, "Refund for order 100%", priority="low", source_channel="email"
        ),
    }
    await ok(
        await admin.post(f"{API}/tickets/{tickets['printer']['id']}/transition", json={"status": "open"})
    )
    await ok(
        await admin.post(f"{API}/tickets/{tickets['password']['id']}/transition", json={"status": "pending"})
    )
    await ok(
        await admin.post(f"{API}/tickets/{tickets['refund']['id']}/transition", json={"status": "resolved"})
    )
    return tickets, {"ada": ada, "bob": bob}


# Query -> the tickets found, newest first. RED_1, RED, BLUE and BOB stand for ids;
# NUMBER:name for that ticket's number.
FILTERS: list[tuple[dict[str, str | list[str]], list[str]]] = [
    ({}, ["refund", "password", "invoice", "printer"]),
    ({"status": "new"}, ["invoice"]),
    ({"status": ["open", "pending"]}, ["password", "printer"]),
    ({"status": ["new", "resolved", "closed"]}, ["refund", "invoice"]),
    ({"priority": "urgent"}, ["invoice"]),
    ({"priority": "normal"}, ["password"]),
    ({"unassigned": "true"}, ["refund", "invoice"]),
    ({"assignee_id": "RED_1"}, ["printer"]),
    ({"team_id": "RED"}, ["invoice", "printer"]),
    ({"team_id": "BLUE"}, ["password"]),
    ({"customer_id": "BOB"}, ["refund", "password"]),
    ({"channel": "email"}, ["refund", "printer"]),
    ({"channel": "sms"}, []),
    ({"q": "NUMBER:invoice"}, ["invoice"]),
    ({"q": "#NUMBER:printer"}, ["printer"]),
    ({"q": "99999"}, []),
    ({"q": "99999999999999999999"}, []),
    ({"q": "²"}, []),  # a "digit" to str.isdigit, but no number
    ({"q": "printer"}, ["printer"]),
    ({"q": "PRINTER broken"}, ["printer"]),  # words in any order
    ({"q": "printer reset"}, []),  # every word must match
    ({"q": "100%"}, ["refund"]),
    ({"q": "%"}, ["refund"]),
    ({"q": "invoice 42"}, ["invoice"]),
    ({"status": "new", "priority": "urgent", "team_id": "RED"}, ["invoice"]),
    ({"status": "new", "priority": "low"}, []),
]


async def test_list_filters(staff: Staff, sign_in: SignIn) -> None:
    tickets, customers = await _ticket_set(staff, sign_in)
    ids = {"RED_1": staff.red_1.id, "RED": staff.red.id, "BLUE": staff.blue.id, "BOB": customers["bob"]}
    names = {t["id"]: name for name, t in tickets.items()}

    def resolve(value: str) -> str:
        if value.lstrip("#").startswith("NUMBER:"):
            prefix = "#" if value.startswith("#") else ""
            return prefix + str(tickets[value.split(":", 1)[1]]["number"])
        return str(ids.get(value, value))

    admin = await sign_in(staff.admin)
    found: dict[str, list[str]] = {}
    for params, _ in FILTERS:
        query = [(k, resolve(v)) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
        page = await ok(await admin.get(f"{API}/tickets", params=query))
        assert page["total"] == len(page["items"])
        found[repr(params)] = [names[t["id"]] for t in page["items"]]
    assert found == {repr(params): expected for params, expected in FILTERS}


async def test_mine_and_pages(staff: Staff, sign_in: SignIn) -> None:
    tickets, _ = await _ticket_set(staff, sign_in)
    me = await sign_in(staff.red_1)
    mine = await ok(await me.get(f"{API}/tickets", params={"mine": "true"}))
    assert [t["id"] for t in mine["items"]] == [tickets["printer"]["id"]]
    blue = await sign_in(staff.blue_1)
    mine = await ok(await blue.get(f"{API}/tickets", params={"mine": "true"}))
    assert [t["id"] for t in mine["items"]] == [tickets["password"]["id"]]

    admin = await sign_in(staff.admin)
    first = await ok(await admin.get(f"{API}/tickets", params={"limit": "3"}))
    rest = await ok(await admin.get(f"{API}/tickets", params={"limit": "3", "offset": "3"}))
    assert (first["total"], first["limit"], len(first["items"]), len(rest["items"])) == (4, 3, 3, 1)
    assert rest["items"][0]["id"] == tickets["printer"]["id"]


async def test_list_refuses_unknown_values(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    for params in ({"status": "done"}, {"priority": "asap"}, {"channel": "fax"}, {"mine": "perhaps"}):
        err = await error(await me.get(f"{API}/tickets", params=params), 422, "invalid_input")
        assert any(k.startswith(next(iter(params))) for k in err["fields"]), err


# --- update ---------------------------------------------------------------------------------


async def test_update_fields_and_priority_due_times(
    staff: Staff, sign_in: SignIn, settings: Settings
) -> None:
    me = await sign_in(staff.red_1)
    t = await new_ticket(me, await new_customer(me, staff.red_1), "Old subject")
    created = at(t["created_at"])
    sla = settings.crm.sla
    updated = await ok(
        await me.patch(
            f"{API}/tickets/{t['id']}",
            json={"subject": " New subject ", "priority": "urgent", "team_id": staff.red.id},
        )
    )
    assert (updated["subject"], updated["priority"], updated["team_id"]) == (
        "New subject",
        "urgent",
        staff.red.id,
    )
    # Due times follow the new priority, still counted from creation.
    assert at(updated["first_response_due_at"]) - created == timedelta(
        minutes=sla.first_response_minutes[Priority.URGENT]
    )
    assert at(updated["resolution_due_at"]) - created == timedelta(
        minutes=sla.resolution_minutes[Priority.URGENT]
    )
    assert at(updated["updated_at"]) >= at(t["updated_at"])
    assert updated["number"] == t["number"] and updated["status"] == "new"

    # Once answered, the first-response due time stays as it was.
    await ok(
        await me.post(f"{API}/tickets/{t['id']}/comments", json={"body": "On it", "internal": False}), 201
    )
    low = await ok(await me.patch(f"{API}/tickets/{t['id']}", json={"priority": "low"}))
    assert low["first_response_due_at"] == updated["first_response_due_at"]
    assert at(low["resolution_due_at"]) - created == timedelta(minutes=sla.resolution_minutes[Priority.LOW])

    # Clearing the team is allowed; an unknown team is not.
    assert (await ok(await me.patch(f"{API}/tickets/{t['id']}", json={"team_id": None})))["team_id"] is None
    err = await error(
        await me.patch(f"{API}/tickets/{t['id']}", json={"team_id": 999999}), 422, "invalid_input"
    )
    assert "team_id" in err["fields"]
    await error(await me.patch(f"{API}/tickets/999999", json={"subject": "x"}), 404, "not_found")


@pytest.mark.parametrize("field", ["subject", "priority", "status"])
async def test_update_refuses_null_for_required_fields(staff: Staff, sign_in: SignIn, field: str) -> None:
    me = await sign_in(staff.red_1)
    t = await new_ticket(me, await new_customer(me, staff.red_1))
    err = await error(await me.patch(f"{API}/tickets/{t['id']}", json={field: None}), 422, "invalid_input")
    assert field in err["fields"]
    assert await ok(await me.get(f"{API}/tickets/{t['id']}")) == t


# --- the status machine ---------------------------------------------------------------------

# Row: the ticket's status; column: the status asked for. ok: allowed; 409: invalid_transition;
# =: same status, a no-op.
TRANSITIONS = """
from      new  open  pending  resolved  closed
new       =    ok    ok       ok        ok
open      409  =     ok       ok        ok
pending   409  ok    =        ok        ok
resolved  409  ok    409      =         ok
closed    409  409   409      409       =
"""


def transition_table() -> dict[tuple[str, str], str]:
    header, *rows = TRANSITIONS.strip().splitlines()
    targets = header.split()[1:]
    return {
        (row.split()[0], target): mark
        for row in rows
        for target, mark in zip(targets, row.split()[1:], strict=True)
    }


@pytest.mark.parametrize("via", ["transition", "patch"])
async def test_transitions(staff: Staff, sign_in: SignIn, via: str) -> None:
    me = await sign_in(staff.red_1)
    customer = await new_customer(me, staff.red_1)
    expected = transition_table()
    outcome: dict[tuple[str, str], str] = {}
    for start, target in expected:
        t = await new_ticket(me, customer)
        if start != "new":
            await ok(await me.post(f"{API}/tickets/{t['id']}/transition", json={"status": start}))
        if via == "transition":
            resp = await me.post(f"{API}/tickets/{t['id']}/transition", json={"status": target})
        else:
            resp = await me.patch(f"{API}/tickets/{t['id']}", json={"status": target})
        body = await resp.json()
        after = await ok(await me.get(f"{API}/tickets/{t['id']}"))
        if resp.status == 200 and start == target:
            outcome[(start, target)] = "="
            assert after["status"] == start
        elif resp.status == 200:
            outcome[(start, target)] = "ok"
            assert after["status"] == target == body["status"]
        elif resp.status == 409 and body["error"]["code"] == "invalid_transition":
            outcome[(start, target)] = "409"
            assert after["status"] == start
            assert start in body["error"]["message"] and target in body["error"]["message"]
        else:
            outcome[(start, target)] = f"{resp.status} {body}"
    assert outcome == expected


async def test_status_timestamps(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    t = await new_ticket(me, await new_customer(me, staff.red_1))
    url = f"{API}/tickets/{t['id']}/transition"

    resolved = await ok(await me.post(url, json={"status": "resolved"}))
    assert resolved["resolved_at"] is not None and resolved["closed_at"] is None
    # The customer wrote back: reopening clears the resolution.
    reopened = await ok(await me.post(url, json={"status": "open"}))
    assert reopened["status"] == "open" and reopened["resolved_at"] is None
    pending = await ok(await me.post(url, json={"status": "pending"}))
    assert pending["resolved_at"] is None
    resolved_again = await ok(await me.post(url, json={"status": "resolved"}))
    assert at(resolved_again["resolved_at"]) >= at(resolved["resolved_at"])
    closed = await ok(await me.post(url, json={"status": "closed"}))
    assert closed["closed_at"] is not None and closed["resolved_at"] == resolved_again["resolved_at"]

    # Closed is final.
    err = await error(await me.post(url, json={"status": "open"}), 409, "invalid_transition")
    assert "closed is final" in err["message"]
    assert (await ok(await me.get(f"{API}/tickets/{t['id']}")))["status"] == "closed"

    # Closing straight from new counts as resolved at the same moment.
    direct = await new_ticket(me, t["customer_id"])
    closed = await ok(await me.post(f"{API}/tickets/{direct['id']}/transition", json={"status": "closed"}))
    assert closed["resolved_at"] == closed["closed_at"] is not None


async def test_transition_needs_a_known_status(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    t = await new_ticket(me, await new_customer(me, staff.red_1))
    for body in ({"status": "done"}, {}, {"status": None}):
        err = await error(
            await me.post(f"{API}/tickets/{t['id']}/transition", json=body), 422, "invalid_input"
        )
        assert "status" in err["fields"]
    await error(await me.post(f"{API}/tickets/999999/transition", json={"status": "open"}), 404, "not_found")


# --- assignment -----------------------------------------------------------------------------

# (actor, current assignee, new assignee) -> status. The ticket's customer belongs to red_1, so
# red_1, red_lead and the admin see it; None: unassigned.
ASSIGNMENTS = {
    ("red_1", None, "red_1"): 200,  # an agent takes a ticket
    ("red_1", None, "red_2"): 403,  # but does not hand out work
    ("red_1", None, "blue_1"): 403,
    ("red_1", "red_1", None): 200,  # and may put their own ticket back
    ("red_1", "red_2", None): 403,  # not a colleague's
    ("red_1", "red_2", "red_1"): 200,  # though the customer's owner may take it over
    ("red_lead", None, "red_2"): 200,  # a supervisor assigns within the team
    ("red_lead", "red_1", "red_lead"): 200,
    ("red_lead", "red_1", None): 200,
    ("red_lead", None, "blue_1"): 403,  # not outside it
    ("red_lead", None, "blue_lead"): 403,
    ("admin", None, "blue_1"): 200,  # the admin anywhere
    ("admin", "red_1", "blue_lead"): 200,
}


@pytest.mark.parametrize("via", ["assign", "patch"])
async def test_assignment_rules(staff: Staff, sign_in: SignIn, via: str) -> None:
    def agent_id(name: str | None) -> int | None:
        return None if name is None else getattr(staff, name).id

    admin = await sign_in(staff.admin)
    customer = await new_customer(admin, staff.red_1)
    sessions = {name: await sign_in(getattr(staff, name)) for name in ("red_1", "red_lead", "admin")}
    outcome = {}
    for actor, current, new in ASSIGNMENTS:
        t = await new_ticket(admin, customer, assignee_id=agent_id(current))
        me = sessions[actor]
        if via == "assign":
            resp = await me.post(f"{API}/tickets/{t['id']}/assign", json={"assignee_id": agent_id(new)})
        else:
            resp = await me.patch(f"{API}/tickets/{t['id']}", json={"assignee_id": agent_id(new)})
        body = await resp.json()
        outcome[(actor, current, new)] = resp.status
        stored = await ok(await admin.get(f"{API}/tickets/{t['id']}"))
        if resp.status == 200:
            assert body["assignee_id"] == stored["assignee_id"] == agent_id(new)
        else:
            assert body["error"]["code"] == "forbidden"
            assert stored["assignee_id"] == agent_id(current)
    assert outcome == ASSIGNMENTS


async def test_assign_to_unknown_or_inactive_agent(
    staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    admin = await sign_in(staff.admin)
    t = await new_ticket(admin, await new_customer(admin, staff.red_1))
    url = f"{API}/tickets/{t['id']}/assign"
    err = await error(await admin.post(url, json={"assignee_id": 999999}), 422, "invalid_input")
    assert "assignee_id" in err["fields"]
    async with uow_factory() as uow:
        (await uow.session.get_one(Agent, staff.red_2.id)).active = False
        await uow.commit()
    err = await error(await admin.post(url, json={"assignee_id": staff.red_2.id}), 422, "invalid_input")
    assert "assignee_id" in err["fields"]
    err = await error(await admin.post(url, json={}), 422, "invalid_input")
    assert "assignee_id" in err["fields"]
    assert (await ok(await admin.get(f"{API}/tickets/{t['id']}")))["assignee_id"] is None


async def test_supervisor_without_team_assigns_only_to_self(staff: Staff, sign_in: SignIn) -> None:
    """Two agents without a team are not "the same team"."""
    admin = await sign_in(staff.admin)
    lone_lead = await ok(
        await admin.post(
            f"{API}/agents",
            json={"login": "lone-lead", "display_name": "Lone", "password": "x" * 12, "role": "supervisor"},
        ),
        201,
    )
    floater = await ok(
        await admin.post(
            f"{API}/agents", json={"login": "floater", "display_name": "F", "password": "x" * 12}
        ),
        201,
    )
    customer = await new_customer(admin, None)
    t = await new_ticket(admin, customer)
    resp = await admin.client.post(f"{API}/auth/login", json={"login": "lone-lead", "password": "x" * 12})
    body = await ok(resp)
    me = Session(admin.client, body["csrf_token"], resp.cookies["cc_session"].value)
    admin.client.session.cookie_jar.clear()
    await error(
        await me.post(f"{API}/tickets/{t['id']}/assign", json={"assignee_id": floater["id"]}),
        403,
        "forbidden",
    )
    await error(
        await me.patch(f"{API}/customers/{customer}", json={"owner_id": floater["id"]}), 403, "forbidden"
    )
    assert (
        await ok(await me.post(f"{API}/tickets/{t['id']}/assign", json={"assignee_id": lone_lead["id"]}))
    )["assignee_id"] == lone_lead["id"]


# --- comments -------------------------------------------------------------------------------


async def test_comments(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    t = await new_ticket(me, await new_customer(me, staff.red_1))
    url = f"{API}/tickets/{t['id']}/comments"

    note = await ok(await me.post(url, json={"body": "  checked the logs  "}), 201)
    assert (note["body"], note["internal"], note["author_id"], note["ticket_id"]) == (
        "checked the logs",
        True,
        staff.red_1.id,
        t["id"],
    )
    # An internal note is not an answer to the customer.
    assert (await ok(await me.get(f"{API}/tickets/{t['id']}")))["first_responded_at"] is None

    lead = await sign_in(staff.red_lead)
    reply = await ok(await lead.post(url, json={"body": "We are on it", "internal": False}), 201)
    assert reply["internal"] is False and reply["author_id"] == staff.red_lead.id
    answered = await ok(await me.get(f"{API}/tickets/{t['id']}"))
    assert answered["first_responded_at"] is not None
    assert at(answered["first_responded_at"]) >= at(note["created_at"])

    # A later answer keeps the first response time.
    await ok(await me.post(url, json={"body": "Fixed", "internal": False}), 201)
    assert (await ok(await me.get(f"{API}/tickets/{t['id']}")))["first_responded_at"] == answered[
        "first_responded_at"
    ]

    listed = await ok(await me.get(url))
    assert [(c["body"], c["internal"]) for c in listed["items"]] == [
        ("checked the logs", True),
        ("We are on it", False),
        ("Fixed", False),
    ]
    assert listed["items"][0] == note

    for body in ({"body": "   "}, {}, {"body": "x", "internal": "maybe"}):
        err = await error(await me.post(url, json=body), 422, "invalid_input")
        assert set(err["fields"]) <= {"body", "internal"} and err["fields"]
    assert len((await ok(await me.get(url)))["items"]) == 3
    await error(await me.post(f"{API}/tickets/999999/comments", json={"body": "x"}), 404, "not_found")
    await error(await me.get(f"{API}/tickets/999999/comments"), 404, "not_found")
