"""REST API: who sees which customers, tickets and interactions (rules in crm_core/visibility.py).

Records the viewer may not see answer 404 exactly like records that do not exist, so neither
reading nor writing reveals that they are there.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse

from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, Team
from crm_core.services.customers import create_customer
from crm_core.services.interactions import log_interaction
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Channel, Direction
from tests.conftest import Session, SignIn, Staff

API = "/api/v1"
MISSING = 999_999

# The world every test below starts from. Customers by owner (None: the shared pool):
CUSTOMERS = {
    "A": "red_1",
    "B": "red_2",
    "C": "blue_1",
    "D": None,
    "E": "blue_1",
    "F": "blue_lead",
    "G": "red_2",
}
# Tickets: (customer, assignee, team).
TICKETS = {
    "T1": ("C", "red_2", None),  # a blue customer's ticket worked by a red agent
    "T2": ("E", None, "red"),  # in the red team's queue, for a blue customer
    "T3": ("A", "blue_1", "blue"),  # a red customer's ticket worked by the blue team
    "T4": ("D", None, None),  # nobody's yet: the general queue
    "T5": ("B", None, "blue"),  # in the blue queue, for a red customer
    "T6": ("B", "red_2", "red"),
    "T7": ("F", "blue_lead", "blue"),  # a supervisor's own customer and ticket
}

# x: listed and readable; .: neither listed nor readable (404).
CUSTOMER_MATRIX = """
viewer      A  B  C  D  E  F  G
red_1       x  .  .  x  x  .  .
red_2       .  x  x  x  x  .  x
red_lead    x  x  x  x  x  .  x
blue_1      x  x  x  x  x  .  .
blue_lead   x  x  x  x  x  x  .
admin       x  x  x  x  x  x  x
"""

TICKET_MATRIX = """
viewer      T1 T2 T3 T4 T5 T6 T7
red_1       .  x  x  x  .  .  .
red_2       x  x  .  x  x  x  .
red_lead    x  x  x  x  x  x  .
blue_1      x  x  x  x  x  .  .
blue_lead   x  x  x  x  x  .  x
admin       x  x  x  x  x  x  x
"""


def parse_matrix(text: str, records: dict[str, Any]) -> dict[str, set[str]]:
    header, *rows = text.strip().splitlines()
    names = header.split()[1:]
    assert names == list(records), header
    matrix = {}
    for row in rows:
        viewer, *marks = row.split()
        assert len(marks) == len(names), row
        matrix[viewer] = {name for name, mark in zip(names, marks, strict=True) if mark == "x"}
    return matrix


VISIBLE_CUSTOMERS = parse_matrix(CUSTOMER_MATRIX, CUSTOMERS)
VISIBLE_TICKETS = parse_matrix(TICKET_MATRIX, TICKETS)
VIEWERS = list(VISIBLE_CUSTOMERS)
assert list(VISIBLE_TICKETS) == VIEWERS, "both matrices list the same viewers"


@dataclass
class World:
    customers: dict[str, int]
    tickets: dict[str, int]
    interactions: dict[str, int]  # one per customer, keyed by the customer's name

    def customer_name(self, customer_id: int) -> str:
        return next(k for k, v in self.customers.items() if v == customer_id)

    def ticket_name(self, ticket_id: int) -> str:
        return next(k for k, v in self.tickets.items() if v == ticket_id)

    def interaction_name(self, interaction_id: int) -> str:
        return next(k for k, v in self.interactions.items() if v == interaction_id)


@pytest_asyncio.fixture(loop_scope="session")
async def world(staff: Staff, uow_factory: UnitOfWorkFactory) -> World:
    def agent(name: str | None) -> int | None:
        if name is None:
            return None
        found: Agent = getattr(staff, name)
        return found.id

    def team(name: str | None) -> int | None:
        if name is None:
            return None
        found: Team = getattr(staff, name)
        return found.id

    customers: dict[str, int] = {}
    tickets: dict[str, int] = {}
    interactions: dict[str, int] = {}
    async with uow_factory() as uow:
        for name, owner in CUSTOMERS.items():
            customer = await create_customer(
                uow, None, region="US", display_name=f"Customer {name}", owner_id=agent(owner)
            )
            customers[name] = customer.id
        for name, (customer_name, assignee, team_name) in TICKETS.items():
            ticket = await open_ticket(
                uow,
                None,
                customer_id=customers[customer_name],
                subject=f"Ticket {name}",
                sla=SlaPolicy(),
                assignee_id=agent(assignee),
                team_id=team(team_name),
            )
            tickets[name] = ticket.id
        for name, customer_id in customers.items():
            logged = await log_interaction(
                uow, channel=Channel.VOICE, direction=Direction.INBOUND, customer_id=customer_id
            )
            interactions[name] = logged.interaction.id
        await uow.commit()
    return World(customers, tickets, interactions)


async def viewer_session(sign_in: SignIn, staff: Staff, viewer: str) -> Session:
    agent: Agent = getattr(staff, viewer)
    return await sign_in(agent)


async def not_found_like(resp: ClientResponse, missing: ClientResponse, record_id: int) -> bool:
    """The answer for a hidden record is the answer for a missing one (bar the id in the text)."""
    body, missing_body = await resp.json(), await missing.json()
    if resp.status != 404 or missing.status != 404:
        return False
    message = body["error"]["message"].replace(str(record_id), "N")
    body["error"]["message"] = message
    missing_body["error"]["message"] = missing_body["error"]["message"].replace(str(MISSING), "N")
    return bool(body == missing_body)


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_customers(viewer: str, world: World, staff: Staff, sign_in: SignIn) -> None:
    me = await viewer_session(sign_in, staff, viewer)
    expected = VISIBLE_CUSTOMERS[viewer]

    page = await (await me.get(f"{API}/customers")).json()
    assert {world.customer_name(c["id"]) for c in page["items"]} == expected
    assert page["total"] == len(expected)

    missing = await me.get(f"{API}/customers/{MISSING}")
    answers = {}
    for name, customer_id in world.customers.items():
        resp = await me.get(f"{API}/customers/{customer_id}")
        if resp.status == 200:
            answers[name] = "read"
        elif await not_found_like(resp, missing, customer_id):
            answers[name] = "404"
        else:
            answers[name] = f"unexpected {resp.status}"
    assert answers == {name: "read" if name in expected else "404" for name in world.customers}

    # Filters do not reveal hidden customers either.
    for name in set(world.customers) - expected:
        owner = CUSTOMERS[name]
        params = {"owner_id": str(getattr(staff, owner).id)} if owner else {"pool": "true"}
        found = await (await me.get(f"{API}/customers", params=params)).json()
        assert world.customers[name] not in {c["id"] for c in found["items"]}
        found = await (await me.get(f"{API}/customers", params={"q": f"customer {name}"})).json()
        assert found["total"] == 0


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_tickets(viewer: str, world: World, staff: Staff, sign_in: SignIn) -> None:
    me = await viewer_session(sign_in, staff, viewer)
    expected = VISIBLE_TICKETS[viewer]

    page = await (await me.get(f"{API}/tickets")).json()
    assert {world.ticket_name(t["id"]) for t in page["items"]} == expected
    assert page["total"] == len(expected)

    missing = await me.get(f"{API}/tickets/{MISSING}")
    answers = {}
    for name, ticket_id in world.tickets.items():
        resp = await me.get(f"{API}/tickets/{ticket_id}")
        if resp.status == 200:
            answers[name] = "read"
        elif await not_found_like(resp, missing, ticket_id):
            answers[name] = "404"
        else:
            answers[name] = f"unexpected {resp.status}"
    assert answers == {name: "read" if name in expected else "404" for name in world.tickets}

    # Searching by number or filtering by customer does not reveal hidden tickets.
    for name in set(world.tickets) - expected:
        ticket_id = world.tickets[name]
        customer_id = world.customers[TICKETS[name][0]]
        by_customer = await (await me.get(f"{API}/tickets", params={"customer_id": str(customer_id)})).json()
        assert ticket_id not in {t["id"] for t in by_customer["items"]}
        by_words = await (await me.get(f"{API}/tickets", params={"q": f"ticket {name}"})).json()
        assert by_words["total"] == 0
        comments = await me.get(f"{API}/tickets/{ticket_id}/comments")
        assert comments.status == 404


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_interactions_follow_their_customer(
    viewer: str, world: World, staff: Staff, sign_in: SignIn
) -> None:
    me = await viewer_session(sign_in, staff, viewer)
    expected = VISIBLE_CUSTOMERS[viewer]

    page = await (await me.get(f"{API}/interactions")).json()
    assert {world.interaction_name(i["id"]) for i in page["items"]} == expected
    assert page["total"] == len(expected)

    missing = await me.get(f"{API}/interactions/{MISSING}")
    answers = {}
    for name, interaction_id in world.interactions.items():
        resp = await me.get(f"{API}/interactions/{interaction_id}")
        if resp.status == 200:
            answers[name] = "read"
        elif await not_found_like(resp, missing, interaction_id):
            answers[name] = "404"
        else:
            answers[name] = f"unexpected {resp.status}"
    assert answers == {name: "read" if name in expected else "404" for name in world.interactions}

    for name, customer_id in world.customers.items():
        filtered = await (
            await me.get(f"{API}/interactions", params={"customer_id": str(customer_id)})
        ).json()
        assert filtered["total"] == (1 if name in expected else 0)
        timeline = await me.get(f"{API}/customers/{customer_id}/timeline")
        assert timeline.status == (200 if name in expected else 404)


@pytest.mark.parametrize("viewer", [v for v in VIEWERS if v != "admin"])
async def test_writes_on_hidden_records_are_404(
    viewer: str, world: World, staff: Staff, sign_in: SignIn
) -> None:
    me = await viewer_session(sign_in, staff, viewer)
    admin = await sign_in(staff.admin)
    me_id: int = getattr(staff, viewer).id
    pool_customer = world.customers["D"]  # visible to everyone
    hidden_customers = set(world.customers) - VISIBLE_CUSTOMERS[viewer]
    hidden_tickets = set(world.tickets) - VISIBLE_TICKETS[viewer]
    assert hidden_customers and hidden_tickets
    before_customers = {
        n: await (await admin.get(f"{API}/customers/{world.customers[n]}")).json() for n in hidden_customers
    }
    before_tickets = {
        n: await (await admin.get(f"{API}/tickets/{world.tickets[n]}")).json() for n in hidden_tickets
    }

    answers: dict[tuple[str, str], int] = {}
    for name in sorted(hidden_customers):
        cid = world.customers[name]
        attempts = {
            "update": me.patch(f"{API}/customers/{cid}", json={"segment": "stolen"}),
            "claim": me.post(f"{API}/customers/{cid}/claim"),
            "merge into hidden": me.post(f"{API}/customers/{cid}/merge", json={"merged_id": pool_customer}),
            "merge hidden away": me.post(f"{API}/customers/{pool_customer}/merge", json={"merged_id": cid}),
            "duplicates": me.get(f"{API}/customers/{cid}/duplicates"),
            "timeline": me.get(f"{API}/customers/{cid}/timeline"),
            "open ticket": me.post(f"{API}/tickets", json={"customer_id": cid, "subject": "x"}),
        }
        for what, call in attempts.items():
            answers[(name, what)] = (await call).status
    for name in sorted(hidden_tickets):
        tid = world.tickets[name]
        attempts = {
            "update": me.patch(f"{API}/tickets/{tid}", json={"subject": "stolen"}),
            "transition": me.post(f"{API}/tickets/{tid}/transition", json={"status": "closed"}),
            "assign to self": me.post(f"{API}/tickets/{tid}/assign", json={"assignee_id": me_id}),
            "comment": me.post(f"{API}/tickets/{tid}/comments", json={"body": "hello", "internal": False}),
            "read comments": me.get(f"{API}/tickets/{tid}/comments"),
        }
        for what, call in attempts.items():
            answers[(name, what)] = (await call).status
    assert answers == dict.fromkeys(answers, 404)

    # Nothing changed behind the 404s.
    for name, before in before_customers.items():
        assert await (await admin.get(f"{API}/customers/{world.customers[name]}")).json() == before
    for name, before in before_tickets.items():
        tid = world.tickets[name]
        assert await (await admin.get(f"{API}/tickets/{tid}")).json() == before
        assert (await (await admin.get(f"{API}/tickets/{tid}/comments")).json())["items"] == []
    assert (await admin.get(f"{API}/customers/{pool_customer}")).status == 200


# --- Seeing is not owning ----------------------------------------------------------------------
#
# Every write on a customer, by every kind of caller, on a customer everyone sees: one owned by
# red_2 (team red) with a ticket waiting in the general queue, and one in the shared pool. Contact
# details of a visible customer may be edited by whoever sees it; acting as its owner (owner
# changes, release to the pool, merges) is for its owner, a supervisor of its owner's team and
# admins, and for everyone on a pool customer. A refused write changes nothing.

OWNED_WRITES = """
write            red_2  red_1  red_lead  blue_lead  blue_1  admin
rename           200    200    200       200        200     200
add_email        200    200    200       200        200     200
add_phone        200    200    200       200        200     200
remove_phone     200    200    200       200        200     200
owner_to_self    200    403    200       403        403     200
owner_to_red_1   403    403    200       403        403     200
owner_to_blue_1  403    403    403       403        403     200
release          200    403    200       403        403     200
claim            200    409    409       409        409     409
merge_into       200    403    200       403        403     200
merge_away       200    403    200       403        403     200
open_ticket      201    201    201       201        201     201
text             201    201    201       201        201     201
import           403    403    200       200        403     200
"""

POOL_WRITES = """
write            red_2  red_1  red_lead  blue_lead  blue_1  admin
rename           200    200    200       200        200     200
owner_to_self    200    200    200       200        200     200
owner_to_red_1   403    200    200       403        403     200
owner_to_blue_1  403    403    403       200        200     200
release          200    200    200       200        200     200
claim            200    200    200       200        200     200
merge_into       200    200    200       200        200     200
merge_away       200    200    200       200        200     200
"""

WRITERS = ["red_2", "red_1", "red_lead", "blue_lead", "blue_1", "admin"]


def parse_writes(text: str) -> dict[str, dict[str, int]]:
    """{actor: {write: expected status}}."""
    header, *rows = text.strip().splitlines()
    actors = header.split()[1:]
    assert actors == WRITERS, header
    expected: dict[str, dict[str, int]] = {actor: {} for actor in actors}
    for row in rows:
        write, *statuses = row.split()
        for actor, status in zip(actors, statuses, strict=True):
            expected[actor][write] = int(status)
    return expected


@dataclass
class Subject:
    """The customer written to, its phone, and a pool customer to merge it with."""

    id: int
    phone: str
    partner: int
    partner_phone: str


@dataclass
class Write:
    staff: Staff
    me: Session
    actor: Agent
    subject: Subject

    def owner_body(self, target: str) -> dict[str, Any]:
        owner: Agent = self.actor if target == "self" else getattr(self.staff, target)
        return {"owner_id": owner.id}

    async def send(self, write: str) -> ClientResponse:
        cid, partner = self.subject.id, self.subject.partner
        me = self.me
        if write == "rename":
            return await me.patch(f"{API}/customers/{cid}", json={"display_name": "Renamed"})
        if write == "add_email":
            return await me.patch(f"{API}/customers/{cid}", json={"add_emails": [f"added.{cid}@example.com"]})
        if write == "add_phone":
            return await me.patch(f"{API}/customers/{cid}", json={"add_phones": [_phone()]})
        if write == "remove_phone":
            return await me.patch(f"{API}/customers/{cid}", json={"remove_phones": [self.subject.phone]})
        if write.startswith("owner_to_"):
            body = self.owner_body(write.removeprefix("owner_to_"))
            return await me.patch(f"{API}/customers/{cid}", json=body)
        if write == "release":
            return await me.patch(f"{API}/customers/{cid}", json={"owner_id": None})
        if write == "claim":
            return await me.post(f"{API}/customers/{cid}/claim")
        if write == "merge_into":
            return await me.post(f"{API}/customers/{cid}/merge", json={"merged_id": partner})
        if write == "merge_away":
            return await me.post(f"{API}/customers/{partner}/merge", json={"merged_id": cid})
        if write == "open_ticket":
            return await me.post(f"{API}/tickets", json={"customer_id": cid, "subject": "Another"})
        if write == "text":
            return await me.post(f"{API}/customers/{cid}/sms", json={"body": "Hello"})
        if write == "import":
            row = f"display_name,phones,tags,owner\nImported,{self.subject.phone},imported,blue-1\n"
            headers = {"Content-Type": "text/csv"}
            return await me.post(f"{API}/customers/import", data=row, headers=headers)
        raise AssertionError(write)

    async def check_done(self, write: str, admin: Session, before: dict[str, Any]) -> None:
        """What the write did, read back by an admin."""
        cid, partner = self.subject.id, self.subject.partner
        if write == "merge_away":
            assert (await admin.get(f"{API}/customers/{cid}")).status == 404
            return
        after = await (await admin.get(f"{API}/customers/{cid}")).json()
        phones = {p["e164"] for p in after["phones"]}
        owner_before = before["owner_id"]
        expected_owner = {
            "release": None,
            "claim": self.actor.id,
            "owner_to_self": self.actor.id,
            "owner_to_red_1": self.staff.red_1.id,
            "owner_to_blue_1": self.staff.blue_1.id,
        }.get(write, owner_before)
        assert after["owner_id"] == expected_owner, (write, after)
        if write == "rename":
            assert after["display_name"] == "Renamed"
        elif write == "add_email":
            assert f"added.{cid}@example.com" in {e["address"] for e in after["emails"]}
        elif write == "add_phone":
            assert len(phones) == 2
        elif write == "remove_phone":
            assert phones == set()
        elif write == "merge_into":
            assert phones == {self.subject.phone, self.subject.partner_phone}
            assert (await admin.get(f"{API}/customers/{partner}")).status == 404
        elif write == "open_ticket":
            found = await (await admin.get(f"{API}/tickets", params={"customer_id": str(cid)})).json()
            assert found["total"] == 2
        elif write == "text":
            texts = await (await admin.get(f"{API}/customers/{cid}/sms")).json()
            assert [t["body"] for t in texts["items"]] == ["Hello"]
        elif write == "import":
            assert "imported" in after["tags"]


_PHONES = itertools.count()


def _phone() -> str:
    return f"+1202{3_000_000 + next(_PHONES):07d}"


async def _subject(admin: Session, owner: Agent | None) -> Subject:
    phone, partner_phone = _phone(), _phone()
    owner_id = owner.id if owner else None
    made = await admin.post(
        f"{API}/customers", json={"display_name": "Subject", "owner_id": owner_id, "phones": [phone]}
    )
    assert made.status == 201, await made.text()
    cid = (await made.json())["id"]
    # A ticket nobody has taken yet, in the general queue: every agent and supervisor sees it.
    opened = await admin.post(f"{API}/tickets", json={"customer_id": cid, "subject": "Waiting"})
    assert opened.status == 201, await opened.text()
    partner = await admin.post(
        f"{API}/customers", json={"display_name": "Partner", "phones": [partner_phone]}
    )
    assert partner.status == 201, await partner.text()
    return Subject(cid, phone, (await partner.json())["id"], partner_phone)


@pytest.mark.parametrize("actor_name", WRITERS)
async def test_customer_writes_by_role(actor_name: str, staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    actor: Agent = getattr(staff, actor_name)
    me = await sign_in(actor)
    for owner, table in ((staff.red_2, OWNED_WRITES), (None, POOL_WRITES)):
        expected = parse_writes(table)[actor_name]
        answers: dict[str, int] = {}
        for write in expected:
            subject = await _subject(admin, owner)
            seen = await me.get(f"{API}/customers/{subject.id}")
            assert seen.status == 200, "the subject is visible to every caller"
            before = await (await admin.get(f"{API}/customers/{subject.id}")).json()
            partner_before = await (await admin.get(f"{API}/customers/{subject.partner}")).json()
            attempt = Write(staff, me, actor, subject)
            resp = await attempt.send(write)
            answers[write] = resp.status
            if resp.status < 300:
                await attempt.check_done(write, admin, before)
            else:
                body = await resp.json()
                assert body["error"]["status"] == resp.status
                assert await (await admin.get(f"{API}/customers/{subject.id}")).json() == before
                partner_now = await admin.get(f"{API}/customers/{subject.partner}")
                assert await partner_now.json() == partner_before
        assert answers == expected, f"{actor_name} on {'a red customer' if owner else 'a pool customer'}"


async def test_contact_point_conflicts_say_the_same_for_hidden_customers(
    staff: Staff, sign_in: SignIn
) -> None:
    """A phone or email already on file answers alike whether its customer is visible or not, and
    names neither that customer's id nor its name."""
    admin = await sign_in(staff.admin)
    lead = await sign_in(staff.red_lead)
    holders = {}
    for who, owner in (("seen", staff.red_1), ("hidden", staff.blue_1)):
        made = await admin.post(
            f"{API}/customers",
            json={
                "display_name": f"Holder {who}",
                "owner_id": owner.id,
                "phones": [f"+1202555{'0143' if who == 'seen' else '0144'}"],
                "emails": [f"{who}@example.com"],
            },
        )
        holders[who] = await made.json()
    assert (await lead.get(f"{API}/customers/{holders['seen']['id']}")).status == 200
    assert (await lead.get(f"{API}/customers/{holders['hidden']['id']}")).status == 404
    mine = await (await lead.post(f"{API}/customers", json={"display_name": "Mine"})).json()

    def attempts(holder: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
        phone, email = holder["phones"][0]["e164"], holder["emails"][0]["address"]
        return {
            "create with phone": ("POST", "/customers", {"display_name": "New", "phones": [phone]}),
            "create with email": ("POST", "/customers", {"display_name": "New", "emails": [email]}),
            "add phone": ("PATCH", f"/customers/{mine['id']}", {"add_phones": [phone]}),
            "add email": ("PATCH", f"/customers/{mine['id']}", {"add_emails": [email]}),
        }

    def neutral(text: str, holder: dict[str, Any]) -> str:
        phone, email = holder["phones"][0]["e164"], holder["emails"][0]["address"]
        return text.replace(phone, "PHONE").replace(email, "EMAIL")

    def names_a_holder(text: str) -> bool:
        ids = "|".join(str(h["id"]) for h in holders.values())
        return bool(re.search(rf"\b(?:{ids})\b", text)) or "Holder" in text

    answers: dict[str, dict[str, Any]] = {}
    for who, holder in holders.items():
        for what, (method, path, body) in attempts(holder).items():
            resp = await lead.request(method, f"{API}{path}", json=body)
            error = (await resp.json())["error"]
            message = neutral(error["message"], holder)
            assert not names_a_holder(message), message
            answers[f"{who}: {what}"] = {"status": resp.status, "error": {**error, "message": message}}
    for what in attempts(holders["seen"]):
        assert answers[f"hidden: {what}"] == answers[f"seen: {what}"]
        assert answers[f"hidden: {what}"]["status"] == 409

    # The same in a CSV import: a row whose phone belongs to a customer the importer may not see,
    # or whose phone and email belong to two customers.
    rows = (
        "display_name,phones,emails\n"
        f"Taken,{holders['hidden']['phones'][0]['e164']},\n"
        f"Mixed,{holders['seen']['phones'][0]['e164']},{holders['hidden']['emails'][0]['address']}\n"
    )
    resp = await lead.post(f"{API}/customers/import", data=rows, headers={"Content-Type": "text/csv"})
    report = await resp.json()
    assert resp.status == 200, report
    reasons = [r["reason"] for r in report["rejected"]]
    assert len(reasons) == 2, report
    assert not any(names_a_holder(reason) for reason in reasons), reasons
    assert reasons[0] == "its phone or email already belongs to another customer"
