"""Shared fixtures: a private database and Redis prefix per run, the app, agents and sign-in.

With DATABASE_URL set (PostgreSQL) each run creates and drops its own database; otherwise a
SQLite file in a temporary directory. With REDIS_URL set the app uses Redis under a key prefix
unique to the run.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from contact_center.app import create_app
from contact_center.auth.passwords import Argon2Hasher
from contact_center.settings import Settings, load_settings
from crm_core.db import UnitOfWorkFactory, create_engine, migrate
from crm_core.events import DomainEvent
from crm_core.models import Agent, Base, Role, Team
from crm_core.services.agents import create_agent, create_team
from tests.support.clock import FakeClock
from tests.support.sessions import PASSWORD, Session, signed_in

pytest_plugins = [
    "tests.email_servers",
    "tests.support.mail_app",
    "tests.support.sms",
    "tests.support.voice_calls",
]

# --- what a run leaves out, and why -------------------------------------------------------------
# Tests that need Redis are left out (deselected, and said so) when REDIS_URL is not set, and tests
# that need PostgreSQL when DATABASE_URL is not set; CI runs them in its PostgreSQL + Redis pass.
# In CI (CI=true) nothing may be skipped: a missing Dovecot, openssl or Chromium fails the run
# instead of hiding its tests.
_LEFT_OUT = pytest.StashKey[dict[str, int]]()
_NEEDS = {"needs_redis": ("Redis", "REDIS_URL"), "needs_postgres": ("PostgreSQL", "DATABASE_URL")}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    counts: dict[str, int] = {}
    for marker, (_, variable) in _NEEDS.items():
        if os.environ.get(variable):
            continue
        left_out = [item for item in items if item.get_closest_marker(marker)]
        if left_out:
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
            config.hook.pytest_deselected(items=left_out)
            counts[marker] = len(left_out)
    config.stash[_LEFT_OUT] = counts


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for marker, left_out in config.stash.get(_LEFT_OUT, {}).items():
        what, variable = _NEEDS[marker]
        terminalreporter.write_line(
            f"{left_out} tests need {what} and were left out: set {variable} to run them (CI does)."
        )
    if _in_ci() and terminalreporter.stats.get("skipped"):
        terminalreporter.write_line(
            "CI allows no skipped test: install what the skip reasons above name.", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped") if reporter is not None else None
    if _in_ci() and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


RUN_ID = secrets.token_hex(4)


def _pg_admin_dsn(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    base = os.environ.get("DATABASE_URL")
    if not base:
        path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"cc_test_{RUN_ID}"
    admin = await asyncpg.connect(_pg_admin_dsn(base))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(_pg_admin_dsn(base))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    var_dir: Path = tmp_path_factory.mktemp("var")
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-" + RUN_ID,
        "CONTACT_CENTER__SECURITY__VAR_DIR": str(var_dir),
        "CONTACT_CENTER__SECURITY__PASSWORD_TIME_COST": "1",
        "CONTACT_CENTER__SECURITY__PASSWORD_MEMORY_KIB": "8",
        "CONTACT_CENTER__CRM__DEFAULT_REGION": "US",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        env["REDIS_KEY_PREFIX"] = f"cc-test-{RUN_ID}:"
    return load_settings(env=env)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated(settings: Settings) -> AsyncIterator[None]:
    engine = create_engine(settings.database.url)
    await migrate(engine)
    await engine.dispose()
    yield


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    async def publish(self, events: Any) -> None:
        self.events.extend(events)

    def names(self) -> list[str]:
        return [e.name for e in self.events]


@pytest_asyncio.fixture(loop_scope="session")
async def uow_factory(settings: Settings, migrated: None) -> AsyncIterator[UnitOfWorkFactory]:
    """A unit-of-work factory on the test database; every table is emptied afterwards."""
    engine = create_engine(settings.database.url)
    factory = UnitOfWorkFactory(engine, RecordingPublisher())
    try:
        yield factory
    finally:
        async with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(delete(table))
        await engine.dispose()


@pytest.fixture
def published(uow_factory: UnitOfWorkFactory) -> RecordingPublisher:
    publisher = uow_factory.publisher
    assert isinstance(publisher, RecordingPublisher)
    return publisher


@dataclass
class Staff:
    """Two teams with a supervisor and two agents each, plus an admin."""

    admin: Agent
    red: Team
    blue: Team
    red_lead: Agent
    red_1: Agent
    red_2: Agent
    blue_lead: Agent
    blue_1: Agent


@pytest_asyncio.fixture(loop_scope="session")
async def staff(uow_factory: UnitOfWorkFactory, settings: Settings) -> Staff:
    hasher = Argon2Hasher(settings.security.password_time_cost, settings.security.password_memory_kib)
    async with uow_factory() as uow:
        s = uow.session
        red = await create_team(s, "Red")
        blue = await create_team(s, "Blue")

        async def agent(login: str, role: Role, team: Team | None) -> Agent:
            return await create_agent(
                s,
                hasher,
                login=login,
                display_name=login.title(),
                password=PASSWORD,
                role=role,
                team_id=team.id if team else None,
            )

        result = Staff(
            admin=await agent("admin", Role.ADMIN, None),
            red=red,
            blue=blue,
            red_lead=await agent("red-lead", Role.SUPERVISOR, red),
            red_1=await agent("red-1", Role.AGENT, red),
            red_2=await agent("red-2", Role.AGENT, red),
            blue_lead=await agent("blue-lead", Role.SUPERVISOR, blue),
            blue_1=await agent("blue-1", Role.AGENT, blue),
        )
        await uow.commit()
    return result


@pytest.fixture
def rate_clock() -> FakeClock:
    """The clock the ``client`` app counts rate-limit windows on: it moves when the test says."""
    return FakeClock()


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    settings: Settings, uow_factory: UnitOfWorkFactory, rate_clock: FakeClock
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(isolated_settings(settings), rate_clock=rate_clock)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def isolated_settings(settings: Settings) -> Settings:
    """The run's settings with a Redis key prefix of the test's own: Redis outlives the app, and
    presence or rate limits left by one test must not leak into the next."""
    if not settings.redis.url:
        return settings
    prefix = f"{settings.redis.key_prefix}{next(_TEST_NUMBERS)}:"
    return settings.with_overrides(redis={"key_prefix": prefix})


_TEST_NUMBERS = itertools.count()


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _drop_redis_keys(settings: Settings) -> AsyncIterator[None]:
    yield
    if settings.redis.url:
        redis = Redis.from_url(settings.redis.url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{settings.redis.key_prefix}*")]
            for start in range(0, len(keys), 500):
                await redis.delete(*keys[start : start + 500])
        finally:
            await redis.aclose()


SignIn = Callable[[Agent], Awaitable[Session]]


@pytest.fixture
def sign_in(client: TestClient[Any, Any]) -> SignIn:
    async def _sign_in(agent: Agent) -> Session:
        return await signed_in(client, agent)

    return _sign_in
