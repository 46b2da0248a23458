"""Sessions end when they must: a password change, deactivation (and reactivation), signing out
everywhere (oneself or by an admin) end every browser session of the agent and close their live
sockets, on every instance. API tokens outlive a password change; deactivation refuses them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, select, update

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.realtime import SOCKETS, recheck_sockets
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import AgentSession, utcnow
from tests.conftest import PASSWORD, Session, SignIn, Staff, isolated_settings

API = "/api/v1"
NEW_PASSWORD = "a brand new passphrase"
Client = TestClient[Any, Any]


async def status_of(me: Session) -> int:
    return int((await me.get(f"{API}/auth/me")).status)


async def open_socket(client: Client, headers: dict[str, str]) -> ClientWebSocketResponse:
    ws = await client.ws_connect("/ws/agent", headers=headers)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws


def cookie_of(me: Session) -> dict[str, str]:
    return {"Cookie": me.headers["Cookie"]}


async def closed_by_server(ws: ClientWebSocketResponse) -> str:
    """Wait for the server to close the socket (frames before that are skipped); its reason."""
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive()
            if message.type is not WSMsgType.TEXT:
                assert (message.type, message.data) == (WSMsgType.CLOSE, 1008), message
                return str(message.extra)


async def still_open(ws: ClientWebSocketResponse) -> bool:
    await ws.send_str("ping")
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive()
            if message.type is not WSMsgType.TEXT:
                return False
            if message.data == "pong":
                return True


async def api_token(admin: Session, agent_id: int) -> dict[str, str]:
    resp = await admin.post(f"{API}/tokens", json={"name": "sync", "agent_id": agent_id})
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def sign_in_with(client: Client, login: str, password: str) -> int:
    resp = await client.post(f"{API}/auth/login", json={"login": login, "password": password})
    client.session.cookie_jar.clear()
    return int(resp.status)


async def test_a_password_change_ends_every_session_and_closes_their_sockets(
    client: Client, staff: Staff, sign_in: SignIn
) -> None:
    admin = await sign_in(staff.admin)
    browsers = [await sign_in(staff.red_1) for _ in range(2)]
    colleague = await sign_in(staff.red_2)
    token = await api_token(admin, staff.red_1.id)
    sockets = [await open_socket(client, cookie_of(b)) for b in browsers]
    token_socket = await open_socket(client, token)
    colleague_socket = await open_socket(client, cookie_of(colleague))

    resp = await admin.patch(f"{API}/agents/{staff.red_1.id}", json={"password": NEW_PASSWORD})
    assert resp.status == 200, await resp.text()

    assert [await status_of(b) for b in browsers] == [401, 401]
    assert [await closed_by_server(ws) for ws in sockets] == ["password_changed"] * 2
    # API tokens are not sessions: they keep working after a password change.
    assert (await client.get(f"{API}/auth/me", headers=token)).status == 200
    assert await still_open(token_socket)
    assert await status_of(colleague) == 200 and await still_open(colleague_socket)
    assert await status_of(admin) == 200
    assert await sign_in_with(client, staff.red_1.login, PASSWORD) == 401
    assert await sign_in_with(client, staff.red_1.login, NEW_PASSWORD) == 200
    for ws in (token_socket, colleague_socket):
        await ws.close()


async def test_deactivation_ends_sessions_for_good_and_closes_token_sockets(
    client: Client, staff: Staff, sign_in: SignIn
) -> None:
    admin = await sign_in(staff.admin)
    browser = await sign_in(staff.red_1)
    token = await api_token(admin, staff.red_1.id)
    socket = await open_socket(client, cookie_of(browser))
    token_socket = await open_socket(client, token)

    assert (await admin.patch(f"{API}/agents/{staff.red_1.id}", json={"active": False})).status == 200
    assert await closed_by_server(socket) == "deactivated"
    assert await closed_by_server(token_socket) == "deactivated"
    assert (await client.get(f"{API}/auth/me", headers=token)).status == 401

    # Coming back does not bring the old sessions back: signing in again does.
    assert (await admin.patch(f"{API}/agents/{staff.red_1.id}", json={"active": True})).status == 200
    assert await status_of(browser) == 401
    assert (await client.get(f"{API}/auth/me", headers=token)).status == 200
    again = await sign_in(staff.red_1)
    assert await status_of(again) == 200


async def test_sign_out_everywhere(client: Client, staff: Staff, sign_in: SignIn) -> None:
    here, there = await sign_in(staff.red_1), await sign_in(staff.red_1)
    colleague = await sign_in(staff.red_2)
    socket = await open_socket(client, cookie_of(there))

    resp = await here.post(f"{API}/auth/logout-all")
    assert resp.status == 204
    assert resp.cookies["cc_session"].value == ""  # the cookie is cleared in this browser
    assert [await status_of(here), await status_of(there)] == [401, 401]
    assert await closed_by_server(socket) == "signed_out_everywhere"
    assert await status_of(colleague) == 200
    # Without a session there is nothing to sign out of.
    assert (await client.post(f"{API}/auth/logout-all")).status == 401


async def test_signing_out_closes_that_sessions_sockets_only(
    client: Client, staff: Staff, sign_in: SignIn
) -> None:
    here, there = await sign_in(staff.red_1), await sign_in(staff.red_1)
    here_socket, there_socket = (
        await open_socket(client, cookie_of(here)),
        await open_socket(client, cookie_of(there)),
    )

    assert (await here.post(f"{API}/auth/logout")).status == 204
    assert await closed_by_server(here_socket) == "signed_out"
    assert await status_of(there) == 200 and await still_open(there_socket)
    await there_socket.close()


async def test_an_admin_signs_an_agent_out_everywhere(client: Client, staff: Staff, sign_in: SignIn) -> None:
    admin = await sign_in(staff.admin)
    browsers = [await sign_in(staff.blue_1) for _ in range(2)]
    socket = await open_socket(client, cookie_of(browsers[0]))
    lead = await sign_in(staff.blue_lead)

    assert (await lead.post(f"{API}/agents/{staff.blue_1.id}/sign-out")).status == 403
    assert (await browsers[1].post(f"{API}/agents/{staff.blue_1.id}/sign-out")).status == 403
    assert [await status_of(b) for b in browsers] == [200, 200]
    assert (await admin.post(f"{API}/agents/999999/sign-out")).status == 404

    assert (await admin.post(f"{API}/agents/{staff.blue_1.id}/sign-out")).status == 204
    assert [await status_of(b) for b in browsers] == [401, 401]
    assert await closed_by_server(socket) == "signed_out_by_admin"
    assert await status_of(admin) == 200 and await status_of(lead) == 200


async def test_new_rights_take_effect_on_a_new_socket(client: Client, staff: Staff, sign_in: SignIn) -> None:
    """A supervisor made an agent (or moved to another team) keeps their session, but their socket
    is closed, so the one their browser opens again carries the new role and team."""
    admin = await sign_in(staff.admin)
    lead = await sign_in(staff.red_lead)
    socket = await open_socket(client, cookie_of(lead))
    resp = await admin.patch(f"{API}/agents/{staff.red_lead.id}", json={"role": "agent"})
    assert resp.status == 200, await resp.text()
    assert await closed_by_server(socket) == "rights_changed"
    assert await status_of(lead) == 200
    # Changes that touch neither rights nor sessions leave the socket alone.
    socket = await open_socket(client, cookie_of(lead))
    assert (
        await admin.patch(f"{API}/agents/{staff.red_lead.id}", json={"display_name": "Red"})
    ).status == 200
    assert await still_open(socket)
    await socket.close()


async def test_sockets_of_sessions_ended_or_expired_meanwhile_are_closed(
    client: Client, staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    """Should the bus lose the event, each instance's periodic check closes them."""
    sockets = {}
    for name in ("ended", "expired", "kept"):
        sockets[name] = await open_socket(client, cookie_of(await sign_in(staff.red_1)))
    session_ids = sorted(await _session_ids(uow_factory, staff.red_1.id))
    async with uow_factory() as uow:
        await uow.session.execute(delete(AgentSession).where(AgentSession.id == session_ids[0]))
        await uow.session.execute(
            update(AgentSession).where(AgentSession.id == session_ids[1]).values(expires_at=utcnow())
        )
        await uow.commit()

    closed = await recheck_sockets(client.app[RUNTIME], client.app[SOCKETS])
    assert closed == 2
    assert await closed_by_server(sockets["ended"]) == "session ended"
    assert await closed_by_server(sockets["expired"]) == "session ended"
    assert await still_open(sockets["kept"])
    await sockets["kept"].close()


async def _session_ids(uow_factory: UnitOfWorkFactory, agent_id: int) -> list[int]:
    async with uow_factory() as uow:
        return list(
            await uow.session.scalars(select(AgentSession.id).where(AgentSession.agent_id == agent_id))
        )


@pytest.mark.needs_redis
async def test_sockets_close_on_every_instance(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    shared = isolated_settings(settings)
    async with (
        TestClient(TestServer(create_app(shared))) as one,
        TestClient(TestServer(create_app(shared))) as two,
    ):
        resp = await two.post(f"{API}/auth/login", json={"login": staff.red_1.login, "password": PASSWORD})
        cookie = {"Cookie": f"cc_session={resp.cookies['cc_session'].value}"}
        two.session.cookie_jar.clear()
        socket = await open_socket(two, cookie)
        admin_login = await one.post(f"{API}/auth/login", json={"login": "admin", "password": PASSWORD})
        csrf = (await admin_login.json())["csrf_token"]
        resp = await one.patch(
            f"{API}/agents/{staff.red_1.id}", json={"password": NEW_PASSWORD}, headers={"X-CSRF-Token": csrf}
        )
        assert resp.status == 200, await resp.text()
        assert await closed_by_server(socket) == "password_changed"
        assert (await two.get(f"{API}/auth/me", headers=cookie)).status == 401
