"""The API answers as its OpenAPI document says, checked from the outside.

Schemathesis reads ``/api/openapi.json`` from the running application (served on a loopback port)
and sends generated requests to every documented operation: valid input as an admin, a supervisor
and an agent (API tokens), without credentials and with an unknown token, then invalid input. Every
answer's status must be documented for the operation, its body must match the documented schema
(errors: the one JSON error shape), its content type must be a documented one, a caller without
valid credentials gets a 401 from every signed-in operation, invalid input is refused with a 4xx,
and no input causes a 500.

Records are created first (customers, a ticket, a call, a chat, mail, a quarantined message, an
opted-out number) and generated path ids and ``*_id`` fields are now and then pointed at them, so
requests reach real rows and not only 404s; a successful POST is sent twice, as a client retrying
would. Examples per operation are bounded and generation is derandomized: a run is reproducible
and fast enough for every CI run. It runs on SQLite and on PostgreSQL: the database decides what
input it refuses (NULs, numbers past 64 bits, times past the calendar), and those are the 500s.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from channels.email.content_store import ContentStore
from contact_center.api.spec import API_PREFIX
from contact_center.app import API_GROUPS, create_app
from contact_center.auth.credentials import create_api_token
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import (
    Agent,
    EmailAttachment,
    EmailKind,
    EmailMessage,
    EmailQuarantine,
    EmailStatus,
    utcnow,
)
from crm_core.services.chat import (
    PreChat,
    add_visitor_message,
    assign_waiting,
    start_conversation,
    touch_visitor,
)
from crm_core.services.chat_blocks import block_address
from crm_core.services.interactions import log_interaction
from crm_core.services.sms_suppression import REASON_KEYWORD, suppress
from crm_core.types import Channel, Direction
from tests.conftest import PASSWORD, Staff, isolated_settings

Client = TestClient[Any, Any]

# Valid examples per operation and role (callers without credentials or with an unknown token get
# a few: every answer is a 401), and invalid examples per operation. CONTRACT_EXAMPLES=50 runs a
# deeper search locally.
POSITIVE_EXAMPLES = NEGATIVE_EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "8"))
ANONYMOUS_EXAMPLES = 2
STRANGERS = ("nobody", "stranger")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
# Credentials are the callers' own (a role's token, or none), never generated.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
# Every operation of the route table, named in the test id by its operationId.
OPERATIONS = [
    pytest.param(f"{e.method} {e.path}", id=e.handler.__name__) for g in API_GROUPS for e in g.endpoints
]
BLOCKED_ADDRESS = "203.0.113.9"
# Body fields that name a record, and the records (by path resource) they are pointed at.
ID_FIELDS = {
    "customer_id": "customers",
    "merged_id": "customers",
    "agent_id": "agents",
    "owner_id": "agents",
    "assignee_id": "agents",
    "supervisor_id": "agents",
    "team_id": "teams",
    "up_to": "chat-messages",
}


def hypothesis_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        # A failure is reported as found (with a curl command to replay it), not shrunk: shrinking
        # would replay requests against state the earlier ones changed.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@dataclass
class World:
    """The callers' tokens (None: no credentials), the records path ids and ``*_id`` fields may
    point at, telling values for some fields, and bodies known to succeed."""

    tokens: dict[str, str | None]
    ids: dict[str, list[Any]]
    values: dict[str, list[str]]
    bodies: dict[str, Any]

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens[role]
        return {"Authorization": f"Bearer {token}"} if token else {}


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    settings: Settings, uow_factory: UnitOfWorkFactory, tmp_path: Path
) -> AsyncIterator[tuple[Client, Settings]]:
    """The application on a loopback port, its mail content under this test's directory."""
    own = isolated_settings(settings).with_overrides(email={"attachment_dir": str(tmp_path / "mail")})
    async with TestClient(TestServer(create_app(own), host="127.0.0.1")) as client:
        yield client, own


async def token_for(uow_factory: UnitOfWorkFactory, agent: Agent, name: str = "contract") -> tuple[int, str]:
    async with uow_factory() as uow:
        token, secret = await create_api_token(uow.session, name=name, agent_id=agent.id, created_by_id=None)
        await uow.commit()
    return token.id, secret


async def created(client: Client, path: str, body: dict[str, Any], token: str) -> int:
    resp = await client.post(API_PREFIX + path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 201, await resp.text()
    ident: int = (await resp.json())["id"]
    return ident


async def seed(client: Client, staff: Staff, uow_factory: UnitOfWorkFactory, own: Settings) -> World:
    """Tokens for each role and records every role may see (the agent owns them or they are in
    the shared pool)."""
    tokens: dict[str, str | None] = {
        "admin": (await token_for(uow_factory, staff.admin))[1],
        "supervisor": (await token_for(uow_factory, staff.red_lead))[1],
        "agent": (await token_for(uow_factory, staff.red_1))[1],
        "nobody": None,
        "stranger": "cct_not-a-token-of-this-service",
    }
    admin = tokens["admin"] or ""
    spare_token, _ = await token_for(uow_factory, staff.red_2, "spare")
    owned = await created(
        client,
        "/customers",
        {
            "display_name": "Ada",
            "phones": ["202-555-0143"],
            "emails": ["ada@example.com"],
            "owner_id": staff.red_1.id,
        },
        admin,
    )
    pool = await created(client, "/customers", {"display_name": "Bob", "phones": ["202-555-0144"]}, admin)
    ticket = await created(
        client, "/tickets", {"customer_id": owned, "subject": "Help", "assignee_id": staff.red_1.id}, admin
    )
    store = ContentStore(own.email.attachment_dir)
    raw = b"From: ada@example.com\r\nSubject: Help\r\n\r\nHello\r\n"
    async with uow_factory() as uow:
        session = uow.session
        call = await log_interaction(
            uow,
            channel=Channel.VOICE,
            direction=Direction.INBOUND,
            customer_id=owned,
            agent_id=staff.red_1.id,
            external_id="CA" + "0" * 32,
        )
        await suppress(uow, "+12025550144", reason=REASON_KEYWORD, customer_id=pool, keyword="STOP")
        visitor = await touch_visitor(uow, "visitor-contract", BLOCKED_ADDRESS)
        chat, _ = await start_conversation(
            uow,
            visitor,
            PreChat(name="Ada", email="ada@example.com"),
            region="US",
            origin=None,
            ip=BLOCKED_ADDRESS,
        )
        assert await assign_waiting(uow, chat.id, staff.red_1.id)
        said = await add_visitor_message(session, chat.id, "c1", "Hello", utcnow())
        assert said is not None
        await block_address(uow, chat, BLOCKED_ADDRESS, staff.red_lead.id, "spam", 1, now=utcnow())
        email = EmailMessage(
            message_key="<contract@example.com>",
            message_id="<contract@example.com>",
            direction=Direction.INBOUND,
            kind=EmailKind.MESSAGE,
            status=EmailStatus.RECEIVED,
            ticket_id=ticket,
            customer_id=owned,
            from_address="ada@example.com",
            subject="Help",
            text_body="Hello",
            visible_text="Hello",
            raw_sha256=store.put(raw),
            raw_size=len(raw),
        )
        session.add(email)
        await session.flush()
        picture = EmailAttachment(
            email_id=email.id,
            filename="a.png",
            content_type="image/png",
            size=4,
            sha256=store.put(b"\x89PNG"),
        )
        skipped = EmailAttachment(
            email_id=email.id,
            filename="b.exe",
            content_type="application/x-msdownload",
            size=9,
            skipped_reason="type",
        )
        quarantined = EmailQuarantine(
            mailbox="support",
            uidvalidity=1,
            uid=7,
            raw_sha256=store.put(raw),
            raw_size=len(raw),
            error="boom",
        )
        session.add_all([picture, skipped, quarantined])
        await session.flush()
        ids: dict[str, list[Any]] = {
            "customers": [owned, pool],
            "tickets": [ticket],
            "calls": [call.interaction.id],
            "interactions": [call.interaction.id, chat.interaction_id],
            "agents": [staff.red_2.id, staff.red_1.id],
            "presence": [staff.red_2.id],
            "teams": [staff.red.id],
            "tokens": [spare_token],
            "chats": [chat.id],
            "chat-messages": [said.message_id],
            "chat-blocks": [BLOCKED_ADDRESS],
            "emails": [email.id],
            "email-attachments": [picture.id, skipped.id],
            "email-quarantine": [quarantined.id],
        }
        await uow.commit()
    values = {
        "disposition": list(own.voice.dispositions),
        # Times at the ends of the calendar, which some drivers cannot send once made UTC.
        "since": ["9999-12-31T23:59:00-23:59", "0001-01-01T00:00:00+23:59", "2024-05-01T08:00:00Z"],
    }
    bodies = {
        f"POST {API_PREFIX}/auth/login": {"login": "red-1", "password": PASSWORD},
        f"POST {API_PREFIX}/customers/import": "display_name,phones\r\nZoe,202-555-0188\r\n",
    }
    return World(tokens, ids, values, bodies)


def resource_of(case: Case[Any]) -> str:
    return str(case.operation.path).removeprefix(API_PREFIX + "/").split("/")[0]


def point_at_records(case: Case[Any], world: World, pick: int) -> None:
    """Point the case's path parameters, ``*_id`` body fields, and body fields and query parameters
    with a set of telling values at seeded records and those values; some bodies are replaced by one
    known to succeed."""
    found = world.ids.get(resource_of(case))
    if found and case.path_parameters:
        for name in case.path_parameters:
            case.path_parameters[name] = found[pick % len(found)]
    if isinstance(case.body, dict):
        for key in case.body:
            if key in ID_FIELDS:
                # Another record than the path's, so that a merge has two customers.
                choices = world.ids[ID_FIELDS[key]]
                case.body[key] = choices[(pick + 1) % len(choices)]
            elif key in world.values:
                case.body[key] = world.values[key][pick % len(world.values[key])]
    for name in (p.name for p in case.operation.query):
        if name in world.values:
            case.query = {**(case.query or {}), name: world.values[name][pick % len(world.values[name])]}
    if pick == 0 and case.operation.label in world.bodies:
        case.body = world.bodies[case.operation.label]


def exercise(
    base_url: str,
    world: World,
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    examples: int,
    roles: list[str],
) -> None:
    """Send ``examples`` generated cases, each checked against the document."""
    negative = mode is GenerationMode.NEGATIVE
    secured = bool(operation.definition.raw.get("security"))
    checks = NEGATIVE_CHECKS if negative else CHECKS

    def send(case: Case[Any], headers: dict[str, str]) -> int:
        response = case.call(base_url=base_url, headers=headers)
        case.validate_response(response, checks=checks)
        return int(response.status_code)

    @hypothesis_settings(examples)
    @given(
        case=operation.as_strategy(generation_mode=mode),
        role=st.sampled_from(roles),
        pick=st.integers(min_value=0, max_value=3),
    )
    def run(case: Case[Any], role: str, pick: int) -> None:
        headers = world.headers(role)
        if pick and not negative:
            point_at_records(case, world, pick - 1)
        status = send(case, headers)
        if role in STRANGERS and secured:
            assert status == 401, f"{case.method} {case.formatted_path} answered {status} to {role}"
        if case.method == "POST" and 200 <= status < 300 and not negative:
            send(case, headers)  # the same request again, as a client that lost the answer would

    run()


def run_operation(base_url: str, label: str, world: World) -> list[str]:
    """Exercise one operation with every role and invalid input; what broke its contract."""
    schema = schemathesis.openapi.from_url(base_url + "/api/openapi.json", config=CONFIG)
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served document"
    runs = [
        (GenerationMode.POSITIVE, ANONYMOUS_EXAMPLES if role in STRANGERS else POSITIVE_EXAMPLES, [role])
        for role in world.tokens
    ]
    if operation.body or operation.query or operation.path_parameters:
        runs.append((GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, ["admin", "agent"]))
    failures = []
    for mode, examples, roles in runs:
        try:
            exercise(base_url, world, operation, mode, examples, roles)
        except Unsatisfiable:
            # Nothing of it can be made invalid (a text path parameter is all it takes).
            assert mode is GenerationMode.NEGATIVE, label
        except (Exception, FailureGroup) as exc:  # every role's and mode's failures are reported together
            failures.append(f"{mode.value} input as {'/'.join(roles)}: {exc}")
    return failures


async def test_every_documented_operation_is_exercised(service: tuple[Client, Settings]) -> None:
    client, _ = service
    doc = await (await client.get("/api/openapi.json")).json()
    documented = {f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item}
    exercised = [p.values[0] for p in OPERATIONS]
    assert len(exercised) == len(set(exercised)) > 20
    assert documented == set(exercised)


@pytest.mark.parametrize("label", OPERATIONS)
async def test_operation_keeps_its_contract(
    label: str, service: tuple[Client, Settings], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    client, own = service
    world = await seed(client, staff, uow_factory, own)
    base_url = str(client.make_url("")).rstrip("/")
    failures = await asyncio.to_thread(run_operation, base_url, label, world)
    assert not failures, "\n\n".join(failures)
