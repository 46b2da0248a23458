"""The agent's Voice SDK token: refused until configured, then a JWT for the agent's identity."""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from tests.conftest import PASSWORD, SignIn, Staff, isolated_settings

API = "/api/v1"


async def test_token_needs_configuration(client: TestClient[Any, Any], staff: Staff, sign_in: SignIn) -> None:
    me = await sign_in(staff.red_1)
    resp = await me.post(f"{API}/voice/token")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "voice_sdk_not_configured"
    assert (await client.post(f"{API}/voice/token")).status == 401


async def test_token_carries_the_agent_identity_and_voice_grant(
    settings: Settings, uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    configured = isolated_settings(settings).with_overrides(
        twilio={
            "api_key_sid": "SK" + "1" * 32,
            "api_key_secret": "key-secret-value-of-32-bytes-long",
            "twiml_app_sid": "AP" + "2" * 32,
        }
    )
    async with TestClient(TestServer(create_app(configured))) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"login": staff.red_1.login, "password": PASSWORD}
        )
        csrf = (await login.json())["csrf_token"]
        resp = await client.post(f"{API}/voice/token", headers={"X-CSRF-Token": csrf})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["identity"] == f"agent-{staff.red_1.id}"
    claims = jwt.decode(body["token"], "key-secret-value-of-32-bytes-long", algorithms=["HS256"])
    assert claims["iss"] == "SK" + "1" * 32
    assert claims["sub"] == settings.twilio.account_sid
    assert claims["grants"]["identity"] == f"agent-{staff.red_1.id}"
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP" + "2" * 32
    assert claims["grants"]["voice"]["incoming"]["allow"] is True
    assert claims["exp"] - claims["nbf"] == body["expires_in"] == 3600
