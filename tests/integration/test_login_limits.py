"""Only failed sign-ins are throttled: per login, and (more loosely) per client address."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from contact_center.appkeys import RUNTIME
from contact_center.settings import Settings
from tests.conftest import PASSWORD, Staff
from tests.support.clock import FakeClock

LOGIN = "/api/v1/auth/login"


async def test_many_successful_sign_ins_from_one_address_are_not_throttled(
    client: TestClient[Any, Any], staff: Staff, settings: Settings
) -> None:
    agents = [staff.red_1, staff.red_2, staff.blue_1, staff.red_lead, staff.blue_lead]
    rounds = settings.security.login_attempts_per_minute * 6 // len(agents) + 1
    for _ in range(rounds):
        for agent in agents:
            resp = await client.post(LOGIN, json={"login": agent.login, "password": PASSWORD})
            assert resp.status == 200


async def test_failures_from_one_address_lock_it_out_across_logins(
    client: TestClient[Any, Any], staff: Staff, settings: Settings, rate_clock: FakeClock
) -> None:
    limiter = client.app[RUNTIME].limiter
    per_address = settings.security.login_attempts_per_minute * 5
    logins = [f"guess-{i}" for i in range(per_address)]
    try:
        for login in logins:
            resp = await client.post(LOGIN, json={"login": login, "password": "not the password"})
            assert resp.status == 401
        rate_clock.advance(59)  # still the same minute
        resp = await client.post(LOGIN, json={"login": staff.red_1.login, "password": PASSWORD})
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "too_many_requests"
        rate_clock.advance(1)  # the next minute: the address may sign in again
        resp = await client.post(LOGIN, json={"login": staff.red_1.login, "password": PASSWORD})
        assert resp.status == 200
    finally:
        await limiter.reset("login-ip:127.0.0.1")
        for login in logins:
            await limiter.reset(f"login:{login}")
