"""The OpenAPI document: valid, and in step with the routes the application really serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest_asyncio
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate as validate_spec

from contact_center.api.spec import API_PREFIX
from contact_center.appkeys import RUNTIME
from crm_core.db import UnitOfWorkFactory
from crm_core.services.interactions import log_interaction
from crm_core.types import Channel, Direction
from tests.conftest import SignIn, Staff

Client = TestClient[Any, Any]
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest_asyncio.fixture(loop_scope="session")
async def doc(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


def served_operations(client: Client) -> set[tuple[str, str]]:
    """(method, path) of every route registered under the API prefix."""
    found = set()
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(API_PREFIX + "/") and route.method.lower() in METHODS:
            found.add((route.method.lower(), path))
    return found


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_is_a_valid_openapi_31_document(doc: dict[str, Any], client: Client) -> None:
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": client.app[RUNTIME].settings.server.public_base_url}]
    assert set(doc["components"]["securitySchemes"]) == {"session", "bearer"}
    validate_spec(doc)  # raises on any violation of the OpenAPI 3.1 schema


async def test_every_served_route_is_documented_and_back(doc: dict[str, Any], client: Client) -> None:
    served = served_operations(client)
    documented = documented_operations(doc)
    assert len(served) > 20
    assert served - documented == set(), "routes missing from the document"
    assert documented - served == set(), "documented operations that are not served"
    # Everything documented lives under the API prefix.
    assert all(path.startswith(API_PREFIX + "/") for path in doc["paths"])


async def test_operations_are_complete(doc: dict[str, Any]) -> None:
    operation_ids = []
    for method, path, op in operations(doc):
        where = f"{method.upper()} {path}"
        operation_ids.append(op["operationId"])
        assert op["summary"] and op["tags"], where
        responses = op["responses"]
        assert any(code.startswith("2") for code in responses), where
        for code, response in responses.items():
            assert re.fullmatch(r"[1-5]\d\d", code), where
            assert response["description"], where
            if code.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, where
        # Every {name} in the path is a declared path parameter, and nothing else is.
        params = op.get("parameters", [])
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), where
        assert all(p["required"] for p in params if p["in"] == "path"), where
        names = [(p["name"], p["in"]) for p in params]
        assert len(names) == len(set(names)), where
        if "{" in path:
            assert "404" in responses, where
        if op.get("security"):
            assert {"401", "403"} <= set(responses), where
        if "requestBody" in op:
            assert op["requestBody"]["content"], where
            assert {"413", "415", "422"} <= set(responses), where
            # Only a JSON body can be refused as malformed JSON.
            json_body = "application/json" in op["requestBody"]["content"]
            assert ("400" in responses) == json_body, where
        elif not any(p["in"] == "query" for p in op.get("parameters", [])):
            assert "422" not in responses, where  # nothing it reads can be invalid
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


async def test_answers_particular_to_an_operation_are_documented(doc: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> set[str]:
        return set(doc["paths"][API_PREFIX + path][method]["responses"])

    # A wrong password is a 401 and too many of them a 429, though signing in needs no sign-in.
    assert {"200", "401", "429"} <= statuses("post", "/auth/login")
    assert "403" not in statuses("post", "/auth/login")
    # Texting an opted-out number is a 409; the same Idempotency-Key again answers 200.
    for path in ("/tickets/{id}/sms", "/customers/{id}/sms"):
        assert {"201", "200", "409"} <= statuses("post", path), path
    assert {"201", "200"} <= statuses("post", "/chats/{id}/messages")
    assert "404" in statuses("post", "/tickets")  # a customer one may not see
    for method, path in [
        ("post", "/voice/token"),
        ("post", "/customers/{id}/claim"),
        ("post", "/tickets/{id}/transition"),
        ("post", "/agents"),
        ("post", "/teams"),
        ("post", "/email-quarantine/{id}/retry"),
    ]:
        assert "409" in statuses(method, path), path
    # GET answers never refuse a body they do not read.
    assert not {"400", "413", "415"} & statuses("get", "/tickets")
    assert (
        "*/*" in doc["paths"][f"{API_PREFIX}/email-attachments/{{id}}"]["get"]["responses"]["200"]["content"]
    )


async def test_only_login_is_public(doc: dict[str, Any]) -> None:
    public = [(m, p) for m, p, op in operations(doc) if "security" not in op]
    assert public == [("post", f"{API_PREFIX}/auth/login")]


async def test_referenced_schemas_exist(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    all_refs = set(refs(doc))
    assert "#/components/schemas/CustomerOut" in all_refs
    for ref in all_refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    # And every component is used somewhere (the document carries no dead schemas).
    used = {ref.removeprefix("#/components/schemas/") for ref in all_refs}
    assert set(schemas) - used == set()


async def test_query_parameters_are_documented(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"][f"{API_PREFIX}/tickets"]["get"]["parameters"]}
    assert {"limit", "offset", "status", "priority", "mine", "unassigned", "q"} <= set(params)
    assert params["status"]["schema"]["type"] == "array"
    assert params["status"]["schema"]["items"] == {"$ref": "#/components/schemas/TicketStatus"}
    assert params["offset"]["schema"]["minimum"] == 0
    assert not params["q"]["required"]
    customers = {p["name"] for p in doc["paths"][f"{API_PREFIX}/customers"]["get"]["parameters"]}
    assert {"q", "name", "phone", "email", "pool"} <= customers


# GET path -> the component schema its answer is documented with.
SAMPLES = {
    "/auth/me": "SessionOut",
    "/customers": "CustomerPage",
    "/customers/{customer}": "CustomerOut",
    "/customers/{customer}/duplicates": "DuplicateList",
    "/customers/{customer}/timeline": "InteractionPage",
    "/interactions": "InteractionPage",
    "/tickets": "TicketPage",
    "/tickets/{ticket}": "TicketOut",
    "/tickets/{ticket}/comments": "CommentList",
    "/agents": "AgentList",
    "/teams": "TeamList",
    "/tokens": "TokenList",
    "/customers/999999": "ErrorResponse",
    "/customers?limit=0": "ErrorResponse",
}


async def test_responses_match_their_schemas(
    doc: dict[str, Any], staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    me = await sign_in(staff.admin)
    customer = await (
        await me.post(
            f"{API_PREFIX}/customers",
            json={"display_name": "Ada", "phones": ["202-555-0143"], "emails": ["ada@gmail.com"]},
        )
    ).json()
    await me.post(f"{API_PREFIX}/customers", json={"display_name": "Ada", "emails": ["a.da@gmail.com"]})
    ticket = await (
        await me.post(f"{API_PREFIX}/tickets", json={"customer_id": customer["id"], "subject": "Help"})
    ).json()
    await me.post(f"{API_PREFIX}/tickets/{ticket['id']}/comments", json={"body": "hi"})
    await me.post(f"{API_PREFIX}/tokens", json={"name": "n", "agent_id": staff.admin.id})
    async with uow_factory() as uow:
        await log_interaction(
            uow, channel=Channel.SMS, direction=Direction.OUTBOUND, customer_id=customer["id"], meta={"a": 1}
        )
        await uow.commit()

    for path, schema in SAMPLES.items():
        resp = await me.get(API_PREFIX + path.format(customer=customer["id"], ticket=ticket["id"]))
        body = await resp.json()
        assert body.get("items", [body]) != [], f"{path}: the check needs something to check"
        # The document's own schema (with its components) must accept what the server sent.
        jsonschema.validate(body, {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]})
        template = re.sub(r"{\w+}|(?<=/)\d+", "{id}", path.split("?")[0])
        assert str(resp.status) in doc["paths"][API_PREFIX + template]["get"]["responses"], path


async def test_the_document_needs_no_sign_in(client: Client) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    resp = await client.get(f"{API_PREFIX}/customers")
    assert resp.status == 401


async def test_every_idempotency_key_documents_its_reuse(doc: dict[str, Any]) -> None:
    """An operation that reads Idempotency-Key says what a reused key answers: 200 with the first
    result for the same request, 422 idempotency_key_reused (the one error shape) for another."""
    with_key = [
        (method, path, op)
        for method, path, op in operations(doc)
        if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    ]
    assert {(m, p) for m, p, _ in with_key} >= {
        ("post", f"{API_PREFIX}/tickets/{{id}}/sms"),
        ("post", f"{API_PREFIX}/customers/{{id}}/sms"),
    }
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for method, path, op in with_key:
        (header,) = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
        assert "idempotency_key_reused" in header["description"], (method, path)
        assert "200" in op["responses"], (method, path)
        refused = op["responses"]["422"]
        assert "idempotency_key_reused" in refused["description"], (method, path)
        assert refused["content"]["application/json"]["schema"] == error_ref, (method, path)
