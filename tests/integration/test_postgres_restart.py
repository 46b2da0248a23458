"""After PostgreSQL really restarts (a cluster of the test's own, on a spare port, stopped and
started again while the service runs), the first Twilio webhooks all succeed: no connection the
service kept from before the restart fails a request once the database is back.

The shared server is never restarted; ``initdb`` refuses root, so the cluster then runs as the
``postgres`` system user.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from contact_center.app import create_app
from contact_center.settings import Settings
from contact_center.voice.wiring import CALL_DESK
from crm_core import sql
from crm_core.db import create_engine, migrate
from tests.conftest import isolated_settings
from tests.support.private_servers import PrivatePostgres, postgres_bin
from tests.support.twilio_webhooks import call_sid, inbound_call, post_signed

pytestmark = pytest.mark.needs_postgres

Client = TestClient[Any, Any]


@pytest_asyncio.fixture(loop_scope="session")
async def cluster() -> AsyncIterator[PrivatePostgres]:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL's initdb is not installed: no cluster of the test's own can be started")
    own = PrivatePostgres()
    await own.create()
    try:
        admin = await asyncpg.connect(host="127.0.0.1", port=own.port, user="postgres", database="postgres")
        await admin.execute("CREATE DATABASE cc_restart")
        await admin.close()
        yield own
    finally:
        await own.destroy()


async def test_every_webhook_after_a_real_restart_succeeds(
    cluster: PrivatePostgres, settings: Settings
) -> None:
    url = cluster.url_of("cc_restart")
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    configured = isolated_settings(settings).with_overrides(database={"url": url})
    async with TestClient(TestServer(create_app(configured))) as client:
        callers = iter(f"+1202555{n:04d}" for n in range(100, 200))
        # Connections in use before the restart: the pool's and those the call path keeps, several
        # at once (callers arriving together, their calls ending).
        assert await _calls(client, [next(callers) for _ in range(12)]) == []

        await cluster.restart()
        failed = await _calls(client, [next(callers) for _ in range(24)])
        assert failed == []

        # Down for a while, webhooks failing meanwhile (nothing to write to), then back.
        assert await _calls(client, [next(callers) for _ in range(12)]) == []
        await cluster.stop()
        assert len(await _calls(client, [next(callers) for _ in range(6)])) == 12
        await cluster.start()
        failed = await _calls(client, [next(callers) for _ in range(24)])
        assert failed == []


async def _calls(client: Client, numbers: list[str]) -> list[tuple[str, int, str]]:
    """Calls from ``numbers`` arriving together, then ending together: the failed webhooks."""
    sids = [call_sid() for _ in numbers]
    arrived = await asyncio.gather(
        *(
            post_signed(client, "/twilio/voice/inbound", inbound_call(sid, n))
            for sid, n in zip(sids, numbers, strict=True)
        )
    )
    ended = await asyncio.gather(
        *(
            post_signed(
                client,
                "/twilio/voice/status",
                {"CallSid": sid, "CallStatus": "completed", "CallDuration": "3", "SequenceNumber": "1"},
            )
            for sid in sids
        )
    )
    return [(r.url.path, r.status, await r.text()) for r in (*arrived, *ended) if r.status != 200]


async def unseen(conn: object) -> bool:
    return False


async def test_a_connection_found_dead_on_use_fails_no_webhook(
    cluster: PrivatePostgres, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection the server ended without the driver seeing it (a failover, a database restarted
    behind its network) fails its next statement; the webhook is answered on a new one."""
    url = cluster.url_of("cc_restart")
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    configured = isolated_settings(settings).with_overrides(database={"url": url})
    async with TestClient(TestServer(create_app(configured))) as client:
        callers = iter(f"+1202557{n:04d}" for n in range(100, 200))
        assert await _calls(client, [next(callers) for _ in range(4)]) == []
        connections = client.app[CALL_DESK].get()._connections
        kept = [conn for conn, _ in connections._idle]
        assert kept
        for conn in kept:
            raw = await conn.get_raw_connection()
            raw.driver_connection.terminate()  # type: ignore[union-attr]
        # Dead, but as if the driver did not know yet: its next statement fails.
        monkeypatch.setattr(sql, "_ended_by_the_server", unseen)
        assert await _calls(client, [next(callers) for _ in range(8)]) == []
