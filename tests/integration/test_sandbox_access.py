"""The sandbox mounted on the service is driven only by a signed-in admin (session and CSRF
header, or API token) or with its control token; an agent drives only their own simulated
browser; its REST API takes the account's credentials, and the public demo token is not them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.appkeys import RUNTIME
from contact_center.auth.credentials import create_api_token
from contact_center.routing.presence import AgentState
from contact_center.settings import PUBLIC_SANDBOX_AUTH_TOKEN, Settings, load_settings
from contact_center.twilio_account import SANDBOX_CONTROL_TOKEN
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Agent, SmsMessage
from tests.conftest import Staff, isolated_settings
from tests.support.sessions import signed_in as sign_in_as
from tests.support.waiting import free_port

SANDBOX = "/twilio-sandbox/sandbox"
DEMO_NUMBER = "+15005550006"
CALLER = "+12025550177"


@pytest_asyncio.fixture(loop_scope="session")
async def service(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[TestClient[Any, Any]]:
    port = free_port()
    site = isolated_settings(settings).with_overrides(
        server={"public_base_url": f"http://127.0.0.1:{port}"}, sandbox={"time_scale": 0.01, "seed": 3}
    )
    async with TestClient(TestServer(create_app(site), host="127.0.0.1", port=port)) as client:
        yield client


def token(service: TestClient[Any, Any]) -> dict[str, str]:
    return {"X-Sandbox-Token": service.app[SANDBOX_CONTROL_TOKEN]}


async def signed_in(service: TestClient[Any, Any], agent: Agent) -> dict[str, str]:
    """The headers of a browser session: its cookie and CSRF token."""
    return (await sign_in_as(service, agent)).headers


async def api_token(uow_factory: UnitOfWorkFactory, agent: Agent) -> dict[str, str]:
    async with uow_factory() as uow:
        _, secret = await create_api_token(uow.session, name="sandbox", agent_id=agent.id, created_by_id=None)
        await uow.commit()
    return {"Authorization": f"Bearer {secret}"}


async def status(service: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]) -> int:
    body = {"to": CALLER, "outcome": None} if path.endswith("/outcomes") else None
    resp = await service.request(method, path, json=body, headers=headers)
    return resp.status


async def test_driving_the_sandbox_takes_an_admin_or_its_control_token(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    control = token(service)["X-Sandbox-Token"]
    admin = await signed_in(service, staff.admin)
    admin_no_csrf = {k: v for k, v in admin.items() if k != "X-CSRF-Token"}
    agent = await signed_in(service, staff.red_1)
    own = f"{SANDBOX}/clients/agent-{staff.red_1.id}/ringing"
    other = f"{SANDBOX}/clients/agent-{staff.red_2.id}/ringing"
    cases = {
        "nobody": {},
        "wrong token": {"X-Sandbox-Token": "guess"},
        "wrong bearer": {"Authorization": "Bearer guess"},
        "token": {"X-Sandbox-Token": control},
        "bearer token": {"Authorization": f"Bearer {control}"},
        "admin": admin,
        "admin without CSRF": admin_no_csrf,
        "admin API token": await api_token(uow_factory, staff.admin),
        "agent": agent,
        "agent API token": await api_token(uow_factory, staff.red_1),
    }
    requests = [
        ("GET", SANDBOX),
        ("GET", f"{SANDBOX}/messages"),
        ("HEAD", f"{SANDBOX}/messages"),
        ("POST", f"{SANDBOX}/messages/outcomes"),
        ("GET", own),
        ("GET", other),
    ]
    seen = {
        (who, method, path.removeprefix(SANDBOX)): await status(service, method, path, headers)
        for who, headers in cases.items()
        for method, path in requests
    }
    own, other = own.removeprefix(SANDBOX), other.removeprefix(SANDBOX)
    expected = {}
    for who in cases:
        for method, path in requests:
            path = path.removeprefix(SANDBOX)
            if who in ("nobody", "wrong token", "wrong bearer"):
                code = 401
            elif who == "admin without CSRF":
                code = 200 if method in ("GET", "HEAD") else 401
            elif who.startswith("agent"):
                code = 200 if path == own else 403
            else:
                code = 200
            expected[(who, method, path)] = code
    assert seen == expected


async def test_nobody_signed_in_reads_texts_or_fakes_a_stop(
    service: TestClient[Any, Any], staff: Staff, uow_factory: UnitOfWorkFactory
) -> None:
    stop = {"from": CALLER, "to": DEMO_NUMBER, "body": "STOP"}
    for headers in ({}, await signed_in(service, staff.red_1)):
        resp = await service.post(f"{SANDBOX}/sms", json=stop, headers=headers)
        assert resp.status in (401, 403), await resp.text()
        assert "message_sid" not in await resp.json()
    async with uow_factory() as uow:
        assert (await uow.session.scalars(SmsMessage.__table__.select())).all() == []
    resp = await service.post(f"{SANDBOX}/sms", json=stop, headers=token(service))
    assert resp.status == 201, await resp.text()


async def test_an_agent_answers_and_hangs_up_only_their_own_calls(
    service: TestClient[Any, Any], staff: Staff
) -> None:
    await service.app[RUNTIME].presence.set(staff.red_1.id, AgentState.AVAILABLE)
    resp = await service.post(
        f"{SANDBOX}/calls", json={"from": CALLER, "to": DEMO_NUMBER}, headers=token(service)
    )
    sid = (await resp.json())["call_sid"]
    mine, theirs = await signed_in(service, staff.red_1), await signed_in(service, staff.red_2)
    ringing = f"{SANDBOX}/clients/agent-{staff.red_1.id}/ringing"
    deadline = time.monotonic() + 10
    while not (await (await service.get(ringing, headers=mine)).json())["calls"]:
        assert time.monotonic() < deadline, "the agent's browser never rang"
        await asyncio.sleep(0.02)

    answer = f"{SANDBOX}/clients/agent-{staff.red_1.id}/answer"
    assert (await service.post(answer, json={"call_sid": sid}, headers=theirs)).status == 403
    assert (await service.get(f"{SANDBOX}/calls/{sid}", headers=mine)).status == 403
    resp = await service.post(answer, json={"call_sid": sid}, headers=mine)
    assert resp.status == 200 and (await resp.json())["status"] == "in-progress"

    hangup = f"{SANDBOX}/calls/{sid}/hangup"
    assert (await service.post(hangup, json={"side": "agent"}, headers=theirs)).status == 403
    assert (await service.post(hangup, json={"side": "caller"}, headers=mine)).status == 403
    assert (await service.post(hangup, json={}, headers=mine)).status == 403
    resp = await service.post(hangup, json={"side": "agent"}, headers=mine)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["to"] == f"client:agent-{staff.red_1.id}"


async def test_the_rest_api_takes_the_accounts_credentials_and_not_the_public_demo_token(
    service: TestClient[Any, Any], staff: Staff
) -> None:
    twilio = service.app[RUNTIME].settings.twilio
    sid, secret = twilio.account_sid, twilio.auth_token.get_secret_value()
    assert secret != PUBLIC_SANDBOX_AUTH_TOKEN
    base = f"/twilio-sandbox/2010-04-01/Accounts/{sid}"
    paths = [
        ("GET", f"{base}/Calls.json"),
        ("POST", f"{base}/Calls.json"),
        ("GET", f"{base}/Calls/CA{'0' * 32}.json"),
        ("POST", f"{base}/Calls/CA{'0' * 32}.json"),
        ("GET", f"{base}/Messages.json"),
        ("POST", f"{base}/Messages.json"),
        ("GET", f"{base}/Messages/SM{'0' * 32}.json"),
        ("GET", f"{base}/Recordings/RE{'0' * 32}.json"),
        ("GET", f"{base}/Recordings/RE{'0' * 32}.wav"),
    ]
    for credentials in (None, (sid, PUBLIC_SANDBOX_AUTH_TOKEN), (sid, "guess")):
        basic = {"Authorization": aiohttp.encode_basic_auth(*credentials)} if credentials else {}
        for method, path in paths:
            # The control token drives the phones; it is no REST credential.
            resp = await service.request(method, path, headers={**basic, **token(service)})
            assert resp.status == 401, (credentials, method, path, resp.status)
    basic = {"Authorization": aiohttp.encode_basic_auth(sid, secret)}
    assert (await service.get(f"{base}/Messages.json", headers=basic)).status == 200


def test_the_public_sandbox_token_is_replaced_by_one_of_the_installation() -> None:
    one = load_settings(env={"SECRET_KEY": "one-installation-secret"})
    again = load_settings(env={"SECRET_KEY": "one-installation-secret"})
    other = load_settings(env={"SECRET_KEY": "another-installation-secret"})
    tokens = {s.twilio.auth_token.get_secret_value() for s in (one, again, other)}
    assert len(tokens) == 2 and PUBLIC_SANDBOX_AUTH_TOKEN not in tokens
    chosen = load_settings(env={"SECRET_KEY": "one-installation-secret", "TWILIO_AUTH_TOKEN": "mine"})
    assert chosen.twilio.auth_token.get_secret_value() == "mine"
