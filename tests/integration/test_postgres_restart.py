"""After PostgreSQL really restarts (a cluster of the test's own, on a spare port, stopped and
started again while the service runs), the first Twilio webhooks all succeed: no connection the
service kept from before the restart fails a request once the database is back.

The shared server is never restarted; ``initdb`` refuses root, so the cluster then runs as the
``postgres`` system user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
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
from tests.support.twilio_webhooks import call_sid, inbound_call, post_signed
from tests.support.waiting import eventually, free_port

pytestmark = pytest.mark.needs_postgres

Client = TestClient[Any, Any]


def _bin_dir() -> Path | None:
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[::-1]), None
    )
    return Path(found).parent if found else None


class Cluster:
    """A PostgreSQL cluster in a temporary directory, listening on loopback ``port`` only."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cc-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def create(self) -> None:
        if self.user is not None:
            shutil.chown(self.root, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.root / "log"), "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-l", str(self.root / "log"), "restart")

    def stop(self, mode: str = "immediate") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


@pytest_asyncio.fixture(loop_scope="session")
async def cluster() -> AsyncIterator[Cluster]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's initdb is not installed: no cluster of the test's own can be started")
    own = Cluster(bin_dir)
    await asyncio.to_thread(own.create)
    await asyncio.to_thread(own.start)
    try:
        admin = await asyncpg.connect(host="127.0.0.1", port=own.port, user="postgres", database="postgres")
        await admin.execute("CREATE DATABASE cc_restart")
        await admin.close()
        yield own
    finally:
        await asyncio.to_thread(own.stop)
        shutil.rmtree(own.root, ignore_errors=True)


async def _answers(cluster: Cluster) -> bool:
    try:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=cluster.port, user="postgres", database="cc_restart"
        )
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def test_every_webhook_after_a_real_restart_succeeds(cluster: Cluster, settings: Settings) -> None:
    url = cluster.url("cc_restart")
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    configured = isolated_settings(settings).with_overrides(database={"url": url})
    async with TestClient(TestServer(create_app(configured))) as client:
        callers = iter(f"+1202555{n:04d}" for n in range(100, 200))
        # Connections in use before the restart: the pool's and those the call path keeps, several
        # at once (callers arriving together, their calls ending).
        assert await _calls(client, [next(callers) for _ in range(12)]) == []

        await asyncio.to_thread(cluster.restart)
        await eventually(lambda: _answers(cluster), what="PostgreSQL answers again")
        failed = await _calls(client, [next(callers) for _ in range(24)])
        assert failed == []

        # Down for a while, webhooks failing meanwhile (nothing to write to), then back.
        assert await _calls(client, [next(callers) for _ in range(12)]) == []
        await asyncio.to_thread(cluster.stop, "fast")
        assert len(await _calls(client, [next(callers) for _ in range(6)])) == 12
        await asyncio.to_thread(cluster.start)
        await eventually(lambda: _answers(cluster), what="PostgreSQL answers again")
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
    cluster: Cluster, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection the server ended without the driver seeing it (a failover, a database restarted
    behind its network) fails its next statement; the webhook is answered on a new one."""
    url = cluster.url("cc_restart")
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
