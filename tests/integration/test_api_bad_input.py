"""REST API: malformed and invalid requests, and the one error shape every failure has:
``{"error": {"status", "code", "message", "fields"?}}``.

Each table below is checked in one test that compares every case's outcome at once, so a
failure shows the whole table's difference.
"""

from __future__ import annotations

import json
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse

from contact_center.settings import Settings
from tests.conftest import Session, SignIn, Staff

API = "/api/v1"


@pytest_asyncio.fixture(loop_scope="session")
async def me(staff: Staff, sign_in: SignIn) -> Session:
    return await sign_in(staff.red_1)


async def error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Check the error shape and return the inner object."""
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    assert resp.status == status, body
    return checked_shape(body, status, code)


def checked_shape(body: Any, status: int, code: str) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) <= {"status", "code", "message", "fields"}, err
    assert {"status", "code", "message"} <= set(err), err
    assert err["status"] == status and err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    if "fields" in err:
        assert err["fields"] and all(
            isinstance(k, str) and isinstance(v, str) for k, v in err["fields"].items()
        )
    return err


async def outcome(resp: ClientResponse) -> tuple[int, str, set[str]]:
    """(status, error code, named fields) after checking the error shape."""
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    if resp.status < 400:
        return resp.status, "", set()
    err = checked_shape(body, resp.status, body["error"]["code"])
    return resp.status, err["code"], set(err.get("fields", {}))


async def customer_count(me: Session) -> int:
    page = await (await me.get(f"{API}/customers")).json()
    total: int = page["total"]
    return total


# --- invalid values -------------------------------------------------------------------------

# Body of POST /customers (display_name added) -> the field the 422 names.
INVALID_CONTACT_POINTS: list[tuple[dict[str, Any], str]] = [
    ({"phones": ["12"]}, "phones[0]"),
    ({"phones": ["202-555-0143", "not a phone"]}, "phones[1]"),
    ({"phones": ["555-0143"]}, "phones[0]"),  # no area code
    ({"phones": [""]}, "phones[0]"),
    ({"phones": ["+1 202 555 0143" + "0" * 30]}, "phones[0]"),  # longer than the schema allows
    ({"phones": [42]}, "phones[0]"),
    ({"emails": ["not-an-email"]}, "emails[0]"),
    ({"emails": ["ok@example.com", "two@@example.com"]}, "emails[1]"),
    ({"emails": ["nobody@localhost"]}, "emails[0]"),
    ({"emails": ["a b@example.com"]}, "emails[0]"),
    ({"emails": ["x@-example.com"]}, "emails[0]"),
]


async def test_invalid_contact_points_on_create(me: Session) -> None:
    seen = {}
    for body, _ in INVALID_CONTACT_POINTS:
        resp = await me.post(f"{API}/customers", json={"display_name": "Ada", **body})
        seen[repr(body)] = await outcome(resp)
    assert seen == {repr(b): (422, "invalid_input", {f}) for b, f in INVALID_CONTACT_POINTS}
    assert await customer_count(me) == 0


# Body of PATCH /customers/{id} (a display_name change added) -> the field the 422 names.
INVALID_CONTACT_CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"add_phones": ["202-555-0143", "12"]}, "add_phones[1]"),
    ({"add_emails": ["nope"]}, "add_emails[0]"),
    ({"remove_phones": ["12"]}, "remove_phones[0]"),
    ({"remove_emails": ["nope"]}, "remove_emails[0]"),
    ({"add_phones": ["1" * 41]}, "add_phones[0]"),
]


async def test_invalid_contact_points_on_update(me: Session) -> None:
    created = await (await me.post(f"{API}/customers", json={"display_name": "Ada"})).json()
    seen = {}
    for body, _ in INVALID_CONTACT_CHANGES:
        resp = await me.patch(f"{API}/customers/{created['id']}", json={"display_name": "Changed", **body})
        seen[repr(body)] = await outcome(resp)
    assert seen == {repr(b): (422, "invalid_input", {f}) for b, f in INVALID_CONTACT_CHANGES}
    # Nothing of those requests was kept.
    assert await (await me.get(f"{API}/customers/{created['id']}")).json() == created


# (path, body) -> the unknown field the 422 names.
UNKNOWN_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("/customers", {"display_name": "Ada", "nickname": "Countess"}, "nickname"),
    ("/customers", {"display_name": "Ada", "phone": "202-555-0143"}, "phone"),  # phones, not phone
    ("/tickets", {"customer_id": 1, "subject": "x", "urgent": True}, "urgent"),
    ("/auth/login", {"login": "red-1", "password": "x", "remember": True}, "remember"),
    ("/customers/1/merge", {"merged_id": 2, "keep": "both"}, "keep"),
    ("/tickets/1/comments", {"body": "x", "public": True}, "public"),
]


async def test_unknown_fields_are_named(me: Session) -> None:
    seen = {}
    for path, body, field in UNKNOWN_FIELDS:
        resp = await me.post(f"{API}{path}", json=body)
        status, code, fields = await outcome(resp)
        seen[path + " " + field] = (status, code, field in fields)
    assert seen == {path + " " + f: (422, "invalid_input", True) for path, _, f in UNKNOWN_FIELDS}


# Body of POST /customers -> the field the 422 names.
WRONG_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"display_name": 123}, "display_name"),
    ({"display_name": None}, "display_name"),
    ({"display_name": ""}, "display_name"),
    ({"display_name": "   "}, "display_name"),
    ({"display_name": "x" * 201}, "display_name"),
    ({"display_name": "Ada", "tags": "vip"}, "tags"),
    ({"display_name": "Ada", "tags": [""]}, "tags[0]"),
    ({"display_name": "Ada", "owner_id": "me"}, "owner_id"),
    ({"display_name": "Ada", "owner_id": 1.5}, "owner_id"),
    ({"display_name": "Ada", "phones": "202-555-0143"}, "phones"),
    ({"display_name": "Ada", "consent": {"sms": "yes please"}}, "consent.sms"),
    ({"display_name": "Ada", "consent": {"fax": True}}, "consent.fax.[key]"),
    ({"display_name": "Ada", "consent": []}, "consent"),
    ({"display_name": "Ada", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ({"display_name": "Ada", "segment": "s" * 101}, "segment"),
    ({"display_name": "Ada", "custom_fields": ["a"]}, "custom_fields"),
    ({}, "display_name"),
]


async def test_wrong_types_and_values(me: Session) -> None:
    seen = {}
    for body, field in WRONG_VALUES:
        status, code, fields = await outcome(await me.post(f"{API}/customers", json=body))
        seen[repr(body)] = (status, code, field in fields)
    assert seen == {repr(b): (422, "invalid_input", True) for b, _ in WRONG_VALUES}
    assert await customer_count(me) == 0


# --- malformed bodies -----------------------------------------------------------------------


async def test_non_json_body_is_400(me: Session) -> None:
    seen = {}
    for raw in (b"{not json", b"", b'{"display_name": "Ada"', b"\xff\xfe{}", b"NaN!"):
        resp = await me.post(f"{API}/customers", data=raw, headers={"Content-Type": "application/json"})
        seen[raw] = (await outcome(resp))[:2]
    assert seen == dict.fromkeys(seen, (400, "invalid_json"))


async def test_json_that_is_not_an_object_is_422(me: Session) -> None:
    seen = {}
    for value in ([], [{"display_name": "Ada"}], "Ada", 42, None, True):
        resp = await me.post(
            f"{API}/customers", data=json.dumps(value), headers={"Content-Type": "application/json"}
        )
        seen[json.dumps(value)] = (await outcome(resp))[:2]
    assert seen == dict.fromkeys(seen, (422, "invalid_input"))
    assert await customer_count(me) == 0


async def test_wrong_content_type_is_415(me: Session) -> None:
    body = json.dumps({"display_name": "Ada"}).encode()
    seen = {}
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        None,
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        seen[content_type] = (await outcome(await me.post(f"{API}/customers", data=body, headers=headers)))[
            :2
        ]
    assert seen == dict.fromkeys(seen, (415, "unsupported_media_type"))
    assert await customer_count(me) == 0


async def test_json_with_charset_is_accepted(me: Session) -> None:
    resp = await me.post(
        f"{API}/customers",
        data=json.dumps({"display_name": "Zoë"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["display_name"] == "Zoë"


async def test_body_larger_than_the_limit_is_413(me: Session, settings: Settings) -> None:
    limit = settings.server.max_body_bytes
    resp = await me.post(
        f"{API}/customers", json={"display_name": "Ada", "custom_fields": {"p": "x" * limit}}
    )
    err = await error(resp, 413, "payload_too_large")
    assert "fields" not in err
    assert await customer_count(me) == 0
    # Just under the limit is read (and then judged on its content).
    small = json.dumps({"display_name": "Ada", "custom_fields": {"p": "x" * (limit - 100)}}).encode()
    assert len(small) <= limit
    resp = await me.post(f"{API}/customers", data=small, headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


# --- paths and queries ----------------------------------------------------------------------

NOT_IDS = [
    "/customers/abc",
    "/customers/-1",
    "/customers/1.5",
    "/customers/1e3",
    "/customers/0x10",
    "/customers/%C2%B2",  # superscript two: a "digit" to str.isdigit
    "/customers/%EF%BC%91",  # full-width one
    "/customers/" + "9" * 19,
    "/customers/abc/timeline",
    "/customers/abc/duplicates",
    "/tickets/abc",
    "/tickets/abc/comments",
    "/interactions/abc",
    "/agents/abc",
]


async def test_non_numeric_ids_are_404(me: Session) -> None:
    seen = {path: (await outcome(await me.get(f"{API}{path}")))[:2] for path in NOT_IDS}
    seen["PATCH customer"] = (await outcome(await me.patch(f"{API}/customers/abc", json={"segment": "x"})))[
        :2
    ]
    seen["claim"] = (await outcome(await me.post(f"{API}/customers/abc/claim")))[:2]
    resp = await me.post(f"{API}/tickets/%C2%B2/comments", json={"body": "x"})
    seen["comment"] = (await outcome(resp))[:2]
    seen["transition"] = (
        await outcome(await me.post(f"{API}/tickets/-5/transition", json={"status": "open"}))
    )[:2]
    assert seen == dict.fromkeys(seen, (404, "not_found"))


# (path, query) -> the parameter the 422 names.
INVALID_QUERIES: list[tuple[str, dict[str, str | list[str]], str]] = [
    ("/customers", {"offset": "-1"}, "offset"),
    ("/customers", {"limit": "0"}, "limit"),
    ("/customers", {"limit": "-5"}, "limit"),
    ("/customers", {"limit": "ten"}, "limit"),
    ("/customers", {"offset": "1.5"}, "offset"),
    ("/customers", {"pool": "perhaps"}, "pool"),
    ("/customers", {"owner_id": "me"}, "owner_id"),
    ("/customers", {"sort": "name"}, "sort"),  # unknown parameter
    ("/tickets", {"limit": "0"}, "limit"),
    ("/tickets", {"offset": "-1"}, "offset"),
    ("/tickets", {"status": ["open", "done"]}, "status[1]"),
    ("/tickets", {"customer_id": "x"}, "customer_id"),
    ("/interactions", {"offset": "-1"}, "offset"),
    ("/interactions", {"channel": "fax"}, "channel"),
    ("/customers/1/timeline", {"limit": "0"}, "limit"),
    # Numbers beyond the 64-bit keys are invalid input, not a database error.
    ("/customers", {"offset": str(2**63)}, "offset"),
    ("/customers", {"offset": "9" * 40}, "offset"),
    ("/customers", {"owner_id": str(2**63)}, "owner_id"),
    ("/customers", {"owner_id": str(-(2**63) - 1)}, "owner_id"),
    ("/tickets", {"customer_id": "9" * 30}, "customer_id"),
    ("/interactions", {"ticket_id": str(2**64)}, "ticket_id"),
]


async def test_invalid_query_parameters_are_422(me: Session) -> None:
    seen = {}
    for path, params, field in INVALID_QUERIES:
        query = [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]
        status, code, fields = await outcome(await me.get(f"{API}{path}", params=query))
        seen[f"{path} {params}"] = (status, code, field in fields)
    assert seen == {f"{p} {q}": (422, "invalid_input", True) for p, q, _ in INVALID_QUERIES}


# (path, body) -> the field the 422 names.
HUGE_IDS: list[tuple[str, dict[str, Any], str]] = [
    ("/customers", {"display_name": "Ada", "owner_id": 2**64}, "owner_id"),
    ("/tickets", {"customer_id": 2**63, "subject": "x"}, "customer_id"),
    ("/customers/1/merge", {"merged_id": -(2**70)}, "merged_id"),
    ("/tickets/1/assign", {"assignee_id": 10**30}, "assignee_id"),
]


async def test_ids_beyond_64_bits_in_bodies_are_422(me: Session) -> None:
    seen = {}
    for path, body, field in HUGE_IDS:
        status, code, fields = await outcome(await me.post(f"{API}{path}", json=body))
        seen[path] = (status, code, field in fields)
    assert seen == {path: (422, "invalid_input", True) for path, _, _ in HUGE_IDS}


async def test_big_but_valid_numbers(me: Session, settings: Settings) -> None:
    page = await (
        await me.get(f"{API}/customers", params={"offset": str(2**63 - 1), "limit": "9" * 40})
    ).json()
    assert (page["items"], page["offset"], page["limit"]) == ([], 2**63 - 1, settings.crm.max_page_size)
    page = await (await me.get(f"{API}/customers", params={"owner_id": str(2**63 - 1)})).json()
    assert page["total"] == 0


async def test_unknown_routes_and_methods(me: Session) -> None:
    await error(await me.get(f"{API}/nothing-here"), 404, "not_found")
    await error(await me.delete(f"{API}/customers"), 405, "method_not_allowed")
    await error(await me.delete(f"{API}/customers/1"), 405, "method_not_allowed")


async def test_errors_without_fields_have_no_fields_key(me: Session) -> None:
    err = await error(await me.get(f"{API}/customers/999999"), 404, "not_found")
    assert "fields" not in err
    resp = await me.patch(f"{API}/customers/999999", json={"nickname": "x"})
    assert "nickname" in (await error(resp, 422, "invalid_input"))["fields"]
