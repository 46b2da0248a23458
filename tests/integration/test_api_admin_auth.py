"""REST API: sign-in, sessions, CSRF, login rate limit, API tokens, agents and teams."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from contact_center.app import ENDPOINTS
from contact_center.appkeys import RUNTIME
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import AgentSession, utcnow
from tests.conftest import PASSWORD, Session, SignIn, Staff
from tests.support.clock import FakeClock

API = "/api/v1"
Client = TestClient[Any, Any]


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def _fresh_login_limits(client: Client) -> AsyncIterator[None]:
    """Failed sign-ins count against the client address; start each test with a clean window."""
    limiter = client.app[RUNTIME].limiter
    await limiter.reset("login-ip:127.0.0.1")
    yield
    # Failed attempts of one test must not lock a login out in the next (Redis outlives the app).
    for login in ("red-1", "red-2", "blue-1", "admin", "locked-out"):
        await limiter.reset(f"login:{login}")


async def ok(resp: ClientResponse, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}
    assert body["error"]["status"] == status and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    err: dict[str, Any] = body["error"]
    return err


async def login(client: Client, login: str, password: str = PASSWORD) -> ClientResponse:
    resp = await client.post(f"{API}/auth/login", json={"login": login, "password": password})
    client.session.cookie_jar.clear()  # the caller decides what to send back
    return resp


async def session_from(client: Client, resp: ClientResponse) -> Session:
    body = await ok(resp)
    return Session(client, body["csrf_token"], resp.cookies["cc_session"].value)


# --- sign in and out ------------------------------------------------------------------------


async def test_login_sets_a_session_cookie(client: Client, staff: Staff, settings: Settings) -> None:
    resp = await login(client, "RED-1")  # logins are case-insensitive
    body = await ok(resp)
    assert body["agent"]["id"] == staff.red_1.id
    assert body["agent"]["login"] == "red-1" and body["agent"]["role"] == "agent"
    assert body["agent"]["team_id"] == staff.red.id
    assert "password" not in str(body) and "password_hash" not in body["agent"]
    assert len(body["csrf_token"]) >= 20

    [cookie] = resp.headers.getall("Set-Cookie")
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert cookie.startswith("cc_session=")
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=lax"
    assert attributes["path"] == "Path=/"
    assert attributes["max-age"] == f"Max-Age={int(settings.security.session_ttl_hours * 3600)}"
    assert "secure" not in attributes  # cookie_secure is off in the test settings
    assert resp.cookies["cc_session"].value != body["csrf_token"]

    me = await session_from(client, resp)
    who = await ok(await me.get(f"{API}/auth/me"))
    assert who == body


@pytest.mark.parametrize(
    ("login_name", "password"),
    [
        ("red-1", "wrong password"),
        ("nobody", PASSWORD),
        ("red-1", PASSWORD.upper()),
        ("red-1", " " + PASSWORD),
    ],
)
async def test_login_failures_are_401(client: Client, staff: Staff, login_name: str, password: str) -> None:
    resp = await login(client, login_name, password)
    err = await error(resp, 401, "invalid_credentials")
    # Unknown login and wrong password read the same.
    assert err["message"] == "wrong login or password"
    assert "Set-Cookie" not in resp.headers


async def test_inactive_agent_cannot_sign_in_and_loses_sessions(
    client: Client, staff: Staff, sign_in: SignIn
) -> None:
    red = await sign_in(staff.red_1)
    admin = await sign_in(staff.admin)
    updated = await ok(await admin.patch(f"{API}/agents/{staff.red_1.id}", json={"active": False}))
    assert updated["active"] is False
    await error(await login(client, "red-1"), 401, "invalid_credentials")
    await error(await red.get(f"{API}/auth/me"), 401, "unauthorized")
    await ok(await admin.patch(f"{API}/agents/{staff.red_1.id}", json={"active": True}))
    await ok(await login(client, "red-1"))


async def test_logout_ends_the_session(client: Client, staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    other = await sign_in(staff.red_1)  # a second browser
    # Logging out is a state change: it needs the CSRF token.
    resp = await client.post(f"{API}/auth/logout", headers={"Cookie": me.headers["Cookie"]})
    await error(resp, 403, "csrf_failed")
    resp = await me.post(f"{API}/auth/logout")
    assert resp.status == 204
    [cookie] = resp.headers.getall("Set-Cookie")
    assert cookie.startswith('cc_session=""') and "Max-Age=0" in cookie
    await error(await me.get(f"{API}/auth/me"), 401, "unauthorized")
    await error(await me.get(f"{API}/customers"), 401, "unauthorized")
    # Only that session ends.
    await ok(await other.get(f"{API}/auth/me"))
    await error(await client.post(f"{API}/auth/logout"), 401, "unauthorized")


async def test_expired_session_is_401(staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory) -> None:
    me = await sign_in(staff.red_1)
    await ok(await me.get(f"{API}/auth/me"))
    async with uow_factory() as uow:
        await uow.session.execute(update(AgentSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        await uow.commit()
    await error(await me.get(f"{API}/auth/me"), 401, "unauthorized")
    # An unknown or stale cookie on a POST is a 401, not a CSRF failure.
    await error(await me.post(f"{API}/customers", json={"display_name": "x"}), 401, "unauthorized")


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "wrong-token", "OTHER_SESSION"])
async def test_cookie_requests_that_change_state_need_the_csrf_token(
    client: Client, staff: Staff, sign_in: SignIn, csrf: str | None
) -> None:
    me = await sign_in(staff.red_1)
    if csrf == "OTHER_SESSION":
        csrf = (await sign_in(staff.red_2)).headers["X-CSRF-Token"]
    headers = {"Cookie": me.headers["Cookie"]}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    customer = await ok(await me.post(f"{API}/customers", json={"display_name": "Ada"}), 201)

    await error(
        await client.post(f"{API}/customers", json={"display_name": "Eve"}, headers=headers),
        403,
        "csrf_failed",
    )
    await error(
        await client.patch(f"{API}/customers/{customer['id']}", json={"segment": "x"}, headers=headers),
        403,
        "csrf_failed",
    )
    await error(
        await client.post(f"{API}/customers/{customer['id']}/claim", headers=headers), 403, "csrf_failed"
    )
    # Reading needs no token.
    page = await ok(await client.get(f"{API}/customers", headers=headers))
    assert [c["display_name"] for c in page["items"]] == ["Ada"]
    assert page["items"][0]["segment"] is None and page["items"][0]["owner_id"] is None


# --- login rate limit -----------------------------------------------------------------------


async def test_login_rate_limit(
    client: Client, staff: Staff, sign_in: SignIn, settings: Settings, rate_clock: FakeClock
) -> None:
    admin = await sign_in(staff.admin)
    await ok(
        await admin.post(
            f"{API}/agents", json={"login": "locked-out", "display_name": "L", "password": PASSWORD}
        ),
        201,
    )
    limit = settings.security.login_attempts_per_minute
    # A success clears the count of failures before it.
    for _ in range(limit - 1):
        await error(await login(client, "locked-out", "wrong password"), 401, "invalid_credentials")
    await ok(await login(client, "locked-out"))
    for _ in range(limit):
        await error(await login(client, "LOCKED-OUT", "wrong password"), 401, "invalid_credentials")
    # Then even the right password is refused for the rest of the minute.
    rate_clock.advance(59)
    err = await error(await login(client, "locked-out"), 429, "too_many_requests")
    assert "minute" in err["message"]
    await error(await login(client, "locked-out", "wrong password"), 429, "too_many_requests")
    # Other logins are not affected.
    await ok(await login(client, "red-2"))
    # The next minute, the login is accepted again.
    rate_clock.advance(1)
    await ok(await login(client, "locked-out"))


# --- API tokens -----------------------------------------------------------------------------


async def test_api_tokens(client: Client, staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    created = await ok(
        await admin.post(f"{API}/tokens", json={"name": "crm-sync", "agent_id": staff.red_1.id}), 201
    )
    assert created["token"].startswith("cct_") and len(created["token"]) > 30
    assert (created["name"], created["agent_id"], created["created_by_id"]) == (
        "crm-sync",
        staff.red_1.id,
        staff.admin.id,
    )
    assert created["revoked_at"] is None and created["last_used_at"] is None
    bearer = {"Authorization": f"Bearer {created['token']}"}

    # The token acts as red_1, needs no CSRF header and sets no cookie.
    who = await ok(await client.get(f"{API}/auth/me", headers=bearer))
    assert who["agent"]["id"] == staff.red_1.id and who["csrf_token"] is None
    resp = await client.post(
        f"{API}/customers", json={"display_name": "Via API", "owner_id": staff.red_1.id}, headers=bearer
    )
    customer = await ok(resp, 201)
    assert "Set-Cookie" not in resp.headers
    resp = await client.post(
        f"{API}/customers", json={"display_name": "x", "owner_id": staff.red_2.id}, headers=bearer
    )
    await error(resp, 403, "forbidden")  # red_1's rights, not more
    await error(await client.get(f"{API}/tokens", headers=bearer), 403, "forbidden")
    resp = await client.post(f"{API}/auth/logout", headers=bearer)
    assert resp.status == 204  # nothing to end, but not an error

    listed = await ok(await admin.get(f"{API}/tokens"))
    [row] = listed["items"]
    assert row["id"] == created["id"] and "token" not in row
    assert row["last_used_at"] is not None

    revoked = await ok(await admin.delete(f"{API}/tokens/{created['id']}"))
    assert revoked["revoked_at"] is not None
    err = await error(
        await client.get(f"{API}/customers/{customer['id']}", headers=bearer), 401, "unauthorized"
    )
    assert "revoked" in err["message"]
    await error(await admin.delete(f"{API}/tokens/999999"), 404, "not_found")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer cct_not-a-real-token", "Bearer ", "Bearer", "Basic cmVkLTE6cGFzc3dvcmQ=", "cct_no-scheme"],
)
async def test_bad_authorization_header_is_401(client: Client, staff: Staff, authorization: str) -> None:
    await error(
        await client.get(f"{API}/customers", headers={"Authorization": authorization}), 401, "unauthorized"
    )


async def test_token_of_inactive_agent_is_refused(client: Client, staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    created = await ok(await admin.post(f"{API}/tokens", json={"name": "n", "agent_id": staff.red_2.id}), 201)
    bearer = {"Authorization": f"Bearer {created['token']}"}
    await ok(await client.get(f"{API}/customers", headers=bearer))
    await ok(await admin.patch(f"{API}/agents/{staff.red_2.id}", json={"active": False}))
    await error(await client.get(f"{API}/customers", headers=bearer), 401, "unauthorized")


@pytest.mark.parametrize("actor", ["red_1", "red_lead"])
async def test_only_admins_manage_tokens(staff: Staff, sign_in: SignIn, actor: str) -> None:
    admin = await sign_in(staff.admin)
    created = await ok(await admin.post(f"{API}/tokens", json={"name": "n", "agent_id": staff.red_1.id}), 201)
    me = await sign_in(getattr(staff, actor))
    body = {"name": "mine", "agent_id": getattr(staff, actor).id}
    await error(await me.post(f"{API}/tokens", json=body), 403, "forbidden")
    await error(await me.get(f"{API}/tokens"), 403, "forbidden")
    await error(await me.delete(f"{API}/tokens/{created['id']}"), 403, "forbidden")
    assert [t["revoked_at"] for t in (await ok(await admin.get(f"{API}/tokens")))["items"]] == [None]


async def test_token_for_unknown_agent_is_422(staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    err = await error(
        await admin.post(f"{API}/tokens", json={"name": "n", "agent_id": 999999}), 422, "invalid_input"
    )
    assert "agent_id" in err["fields"]
    assert (await ok(await admin.get(f"{API}/tokens")))["items"] == []


# --- agents and teams -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        ("admin", ["admin", "red-lead", "red-1", "red-2", "blue-lead", "blue-1"]),
        ("red_lead", ["red-lead", "red-1", "red-2"]),
        ("blue_lead", ["blue-lead", "blue-1"]),
    ],
)
async def test_list_agents(staff: Staff, sign_in: SignIn, viewer: str, expected: list[str]) -> None:
    me = await sign_in(getattr(staff, viewer))
    listed = await ok(await me.get(f"{API}/agents"))
    assert [a["login"] for a in listed["items"]] == expected
    assert all("password_hash" not in a for a in listed["items"])


async def test_agents_cannot_list_agents(staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    await error(await me.get(f"{API}/agents"), 403, "forbidden")


@pytest.mark.parametrize(
    ("viewer", "readable"),
    [
        ("admin", {"admin", "red_lead", "red_1", "blue_1"}),
        ("red_lead", {"red_lead", "red_1"}),
        ("red_1", {"red_1"}),
        ("blue_1", {"blue_1"}),
    ],
)
async def test_read_agent(staff: Staff, sign_in: SignIn, viewer: str, readable: set[str]) -> None:
    me = await sign_in(getattr(staff, viewer))
    for name in ("admin", "red_lead", "red_1", "blue_1"):
        resp = await me.get(f"{API}/agents/{getattr(staff, name).id}")
        if name in readable:
            assert (await ok(resp))["id"] == getattr(staff, name).id
        else:
            await error(resp, 404, "not_found")
    await error(await me.get(f"{API}/agents/999999"), 404, "not_found")


async def test_admin_creates_and_updates_agents(client: Client, staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    body = {
        "login": " New.Agent ",
        "display_name": "New Agent",
        "password": "a long password",
        "team_id": staff.blue.id,
        "skills": ["fr", "billing"],
        "email": "New.Agent@Example.COM",
    }
    created = await ok(await admin.post(f"{API}/agents", json=body), 201)
    assert (created["login"], created["email"], created["role"], created["team_id"]) == (
        "new.agent",
        "new.agent@example.com",
        "agent",
        staff.blue.id,
    )
    assert created["skills"] == ["fr", "billing"] and created["active"] is True
    assert "password" not in created and "password_hash" not in created
    await ok(await login(client, "new.agent", "a long password"))

    await error(await admin.post(f"{API}/agents", json={**body, "login": "NEW.AGENT"}), 409, "conflict")
    for bad, field in (
        ({"password": "short"}, "password"),
        ({"team_id": 999999}, "team_id"),
        ({"supervisor_id": 999999}, "supervisor_id"),
        ({"login": "has space"}, "login"),
        ({"role": "boss"}, "role"),
        ({"email": "not-an-email"}, "email"),
    ):
        err = await error(
            await admin.post(f"{API}/agents", json={**body, "login": "other", **bad}), 422, "invalid_input"
        )
        assert field in err["fields"], (bad, err)

    url = f"{API}/agents/{created['id']}"
    updated = await ok(
        await admin.patch(
            url,
            json={
                "role": "supervisor",
                "team_id": staff.red.id,
                "skills": [],
                "supervisor_id": staff.red_lead.id,
            },
        )
    )
    assert (updated["role"], updated["team_id"], updated["skills"], updated["supervisor_id"]) == (
        "supervisor",
        staff.red.id,
        [],
        staff.red_lead.id,
    )
    assert updated["display_name"] == "New Agent"
    await ok(await admin.patch(url, json={"password": "another long one"}))
    await error(await login(client, "new.agent", "a long password"), 401, "invalid_credentials")
    await ok(await login(client, "new.agent", "another long one"))

    invalid_updates: list[tuple[dict[str, Any], str]] = [
        ({"supervisor_id": 999999}, "supervisor_id"),
        ({"team_id": 999999}, "team_id"),
        ({"password": "short"}, "password"),
        ({"role": None}, "role"),
        ({"display_name": None}, "display_name"),
        ({"active": None}, "active"),
        ({"password": None}, "password"),
        ({"skills": None}, "skills"),
        ({"login": "renamed"}, "login"),
    ]
    for bad, field in invalid_updates:
        err = await error(await admin.patch(url, json=bad), 422, "invalid_input")
        assert field in err["fields"], (bad, err)
    assert await ok(await admin.get(url)) == updated
    await error(await admin.patch(f"{API}/agents/999999", json={"active": False}), 404, "not_found")


@pytest.mark.parametrize("actor", ["red_1", "red_lead"])
async def test_only_admins_write_agents_and_teams(staff: Staff, sign_in: SignIn, actor: str) -> None:
    me = await sign_in(getattr(staff, actor))
    body = {"login": "sneaky", "display_name": "S", "password": "a long password", "role": "admin"}
    await error(await me.post(f"{API}/agents", json=body), 403, "forbidden")
    await error(await me.patch(f"{API}/agents/{staff.red_1.id}", json={"role": "admin"}), 403, "forbidden")
    await error(
        await me.patch(f"{API}/agents/{getattr(staff, actor).id}", json={"role": "admin"}), 403, "forbidden"
    )
    await error(await me.post(f"{API}/teams", json={"name": "Green"}), 403, "forbidden")
    admin = await sign_in(staff.admin)
    agents = await ok(await admin.get(f"{API}/agents"))
    assert "sneaky" not in {a["login"] for a in agents["items"]}
    assert {a["role"] for a in agents["items"] if a["id"] != staff.admin.id} == {"agent", "supervisor"}


async def test_teams(staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    green = await ok(await admin.post(f"{API}/teams", json={"name": "  Green "}), 201)
    assert green["name"] == "Green"
    await error(await admin.post(f"{API}/teams", json={"name": "Green"}), 409, "conflict")
    err = await error(await admin.post(f"{API}/teams", json={"name": ""}), 422, "invalid_input")
    assert "name" in err["fields"]
    me = await sign_in(staff.red_1)
    teams = await ok(await me.get(f"{API}/teams"))
    assert [(t["name"]) for t in teams["items"]] == ["Blue", "Green", "Red"]
    assert {t["id"] for t in teams["items"]} == {staff.blue.id, green["id"], staff.red.id}


# --- unauthenticated calls ------------------------------------------------------------------


async def test_every_private_route_needs_a_signed_in_caller(client: Client, staff: Staff) -> None:
    endpoints = [e for e in client.app[ENDPOINTS] if not e.public]
    assert len(endpoints) > 20
    seen = {}
    for e in endpoints:
        path = re.sub(r"{\w+}", "1", e.path)
        resp = await client.request(e.method, path, json={})
        body = await resp.json()
        seen[f"{e.method} {e.path}"] = (resp.status, body["error"]["code"])
        assert set(body["error"]) == {"status", "code", "message"}
        assert body["error"]["status"] == resp.status
    assert seen == dict.fromkeys(seen, (401, "unauthorized"))
    public = [f"{e.method} {e.path}" for e in client.app[ENDPOINTS] if e.public]
    assert public == [f"POST {API}/auth/login"]
