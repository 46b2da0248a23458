"""REST API: who sees which customers, tickets and interactions (rules in crm_core/visibility.py).

Records the viewer may not see answer 404 exactly like records that do not exist, so neither
reading nor writing reveals that they are there.
"""

from __future__ import annotations

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
