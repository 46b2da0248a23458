"""Two instances of the service behind a load balancer, on a PostgreSQL cluster and a Redis of
their own, with Twilio played by a sandbox process: what an operator runs in production, small
enough to break on purpose.

Everything runs as its own process (``contact-center serve`` twice, ``contact-center sandbox
serve`` once) so that a test can kill an instance with SIGKILL, restart Redis empty, stop it for
a while, or restart PostgreSQL, while callers, texters, chat visitors and agents' consoles (in
``tests/support/fault_traffic.py``) keep going through the load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from contact_center.auth.passwords import Argon2Hasher
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.models import Role
from crm_core.services.agents import create_agent
from tests.support.private_servers import PrivatePostgres
from tests.support.round_robin_proxy import RoundRobinProxy
from tests.support.service_process import COMMAND, ROOT, ServiceProcess, write_settings
from tests.support.spare_redis import SpareRedis
from tests.support.waiting import eventually, free_port

NUMBER = "+15005550006"
ACCOUNT_SID = "AC" + "5a" * 16
AUTH_TOKEN = "fault-suite-auth-token"
CONTROL_TOKEN = "fault-suite-control-token"
SECRET_KEY = "fault-suite-secret-key-0123456789abcdef"
PASSWORD = "fault-suite-password"
ORIGIN = "http://shop.example"
REDIS_PREFIX = "cc-faults:"


@dataclass
class FaultCluster:
    """The servers, the sandbox and two instances; :meth:`start` brings them up in order."""

    agents: int = 4
    settings_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    postgres: PrivatePostgres = field(default_factory=PrivatePostgres)
    redis: SpareRedis = field(default_factory=SpareRedis)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cc-faults-")))
    instances: list[ServiceProcess] = field(default_factory=list)
    proxy: RoundRobinProxy | None = None
    sandbox_port: int = field(default_factory=free_port)
    sandbox: subprocess.Popen[bytes] | None = None
    logins: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.base_url

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    async def start(self) -> None:
        await self.postgres.create()
        await self.redis.start()
        await self._migrate_and_staff()
        ports = [free_port(), free_port()]
        self.proxy = RoundRobinProxy(ports)
        await self.proxy.start()
        config = write_settings(self.root / "settings.toml", self._sections())
        env = self._environment()
        self._start_sandbox(config, env)
        await eventually(self._sandbox_answers, 30, "the sandbox answers")
        for n, port in enumerate(ports):
            instance = ServiceProcess(
                config, {**env, "PORT": str(port)}, port, self.root / f"instance-{n}.log"
            )
            self.instances.append(instance)
        await asyncio.gather(*(instance.start(60) for instance in self.instances))

    async def stop(self) -> None:
        for instance in self.instances:
            instance.kill()
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.kill()
            self.sandbox.wait(15)
        if self.proxy is not None:
            await self.proxy.stop()
        await self.redis.stop()
        await self.postgres.destroy()

    def logs(self, chars: int = 4000) -> str:
        parts = [f"--- instance {n} ---\n{i.log_tail(chars)}" for n, i in enumerate(self.instances)]
        sandbox_log = self.root / "sandbox.log"
        if sandbox_log.exists():
            parts.append(f"--- sandbox ---\n{sandbox_log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    # --- faults ---------------------------------------------------------------------------------

    async def kill_instance(self, n: int = 0, down_seconds: float = 2.0) -> None:
        """SIGKILL one instance and start it again after ``down_seconds``."""
        self.instances[n].kill()
        await asyncio.sleep(down_seconds)
        await self.instances[n].start(60)

    # --- the database, read from outside ------------------------------------------------------------

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.postgres.port, user="postgres", database="postgres"
        )
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    # --- set-up ---------------------------------------------------------------------------------

    async def _migrate_and_staff(self) -> None:
        engine = create_engine(self.postgres.url)
        try:
            await migrate(engine)
            hasher = Argon2Hasher(1, 8)
            async with UnitOfWorkFactory(engine, _NoEvents())() as uow:
                await create_agent(
                    uow.session,
                    hasher,
                    login="admin",
                    display_name="Admin",
                    password=PASSWORD,
                    role=Role.ADMIN,
                )
                for n in range(self.agents):
                    login = f"agent-{n}"
                    await create_agent(
                        uow.session, hasher, login=login, display_name=f"Agent {n}", password=PASSWORD
                    )
                    self.logins.append(login)
                await uow.commit()
        finally:
            await engine.dispose()

    def _sections(self) -> dict[str, dict[str, Any]]:
        sections: dict[str, dict[str, Any]] = {
            "voice": {"wrap_up_seconds": 1, "ring_seconds": 8, "queue_poll_seconds": 0.5},
            "webchat": {
                "allowed_origins": [ORIGIN],
                "queue_poll_seconds": 0.5,
                "max_chats_per_agent": 10,
                "messages_per_minute_per_visitor": 600,
                "messages_per_minute_per_ip": 100000,
                "connections_per_minute_per_ip": 100000,
            },
            "sandbox": {
                "control_token": CONTROL_TOKEN,
                "client_auto_answer_seconds": 1,
                "webhook_timeout": 10,
            },
        }
        for section, values in self.settings_overrides.items():
            sections[section] = {**sections.get(section, {}), **values}
        return sections

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACT_CENTER")}
        for key in (
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_KEY_PREFIX",
            "PUBLIC_BASE_URL",
            "TWILIO_API_BASE_URL",
        ):
            env.pop(key, None)
        env.update(
            {
                "DATABASE_URL": self.postgres.url,
                "REDIS_URL": self.redis.url,
                "REDIS_KEY_PREFIX": REDIS_PREFIX,
                "SECRET_KEY": SECRET_KEY,
                "HOST": "127.0.0.1",
                "PUBLIC_BASE_URL": self.base_url,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_API_BASE_URL": self.sandbox_url,
                "SANDBOX_CONTROL_TOKEN": CONTROL_TOKEN,
                "CONTACT_CENTER__SECURITY__VAR_DIR": str(self.root / "var"),
                "CONTACT_CENTER__SECURITY__PASSWORD_TIME_COST": "1",
                "CONTACT_CENTER__SECURITY__PASSWORD_MEMORY_KIB": "8",
                "CONTACT_CENTER__CRM__DEFAULT_REGION": "US",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _start_sandbox(self, config: Path, env: dict[str, str]) -> None:
        with (self.root / "sandbox.log").open("ab") as log:
            self.sandbox = subprocess.Popen(
                [
                    *COMMAND,
                    "--config",
                    str(config),
                    "sandbox",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.sandbox_port),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def _sandbox_answers(self) -> bool:
        if self.sandbox is not None and self.sandbox.poll() is not None:
            raise AssertionError(f"the sandbox exited with {self.sandbox.returncode}:\n{self.logs()}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.sandbox_url}/sandbox", headers=control_headers()) as resp,
            ):
                return resp.status == 200
        return False


class _NoEvents:
    """The staff are written before any instance runs: nobody to tell."""

    async def publish(self, events: Any) -> None:
        return None


def control_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {CONTROL_TOKEN}"}
