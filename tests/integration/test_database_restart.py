"""The first requests after PostgreSQL restarts succeed: every connection the service holds (in
its pool, and those its call path keeps between calls) is cut by the server, as a restart does, and
the next inbound call, REST request and text are answered as usual.

The shared server is not restarted: the test ends the service's sessions with
``pg_terminate_backend``, which is what a restart does to them.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from contact_center.settings import Settings
from crm_core.db import UnitOfWorkFactory
from crm_core.models import Interaction, SmsMessage
from tests.conftest import SignIn, Staff
from tests.support.twilio_webhooks import call_sid, inbound_call, inbound_text, message_sid, post_signed
from tests.support.waiting import eventually

pytestmark = pytest.mark.needs_postgres

Client = TestClient[Any, Any]


def admin_dsn() -> str:
    """The server's own database (not the run's), to act on the run's sessions from outside."""
    return (
        make_url(os.environ["DATABASE_URL"])
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


async def end_every_session_of(database: str) -> int:
    """What a restart does to the service's connections: the server ends them all."""
    assert database.startswith("cc_test_"), database  # the run's own database, nobody else's
    admin = await asyncpg.connect(admin_dsn())
    try:
        # Chosen first, ended apart: the server may evaluate a WHERE clause in any order.
        pids = [
            row["pid"]
            for row in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        ]
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

        async def all_gone() -> bool:
            left = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids)
            return left == 0

        await eventually(all_gone, what="the ended sessions are gone")
        return len(pids)
    finally:
        await admin.close()


async def call(client: Client, caller: str) -> str:
    resp = await post_signed(client, "/twilio/voice/inbound", inbound_call(call_sid(), caller))
    text = await resp.text()
    assert resp.status == 200, text
    assert "<Response>" in text
    return text


async def count(uow_factory: UnitOfWorkFactory, model: Any) -> int:
    async with uow_factory() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_first_requests_after_a_restart_succeed(
    client: Client, settings: Settings, staff: Staff, sign_in: SignIn, uow_factory: UnitOfWorkFactory
) -> None:
    agent = await sign_in(staff.red_1)
    resp = await agent.request("PUT", "/api/v1/presence/me", json={"state": "available"})
    assert resp.status == 200
    # Connections in use before the restart: the pool's, and the call path's kept ones.
    await call(client, "+12025550111")
    assert (await agent.get("/api/v1/customers")).status == 200

    database = make_url(settings.database.url).database
    assert database and await end_every_session_of(database) > 0

    await call(client, "+12025550112")
    resp = await agent.get("/api/v1/customers")
    assert resp.status == 200, await resp.text()
    assert len((await resp.json())["items"]) == 2  # the two callers
    resp = await post_signed(client, "/twilio/sms/inbound", inbound_text(message_sid(), "+12025550113", "Hi"))
    assert resp.status == 200, await resp.text()
    assert await count(uow_factory, Interaction) == 3
    assert await count(uow_factory, SmsMessage) == 1
