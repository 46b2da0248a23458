"""A database of a migration test's own (a SQLite file, or a fresh PostgreSQL database when
DATABASE_URL is set), and moving its schema to a given revision."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from alembic import command
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_core.db import alembic_config, create_engine
from tests.conftest import RUN_ID


def _admin_dsn(url: str) -> str:
    return (
        make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )


async def _admin(base: str, statement: str) -> None:
    admin = await asyncpg.connect(_admin_dsn(base))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def empty_database(tmp_path: Path, label: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database named after ``label``, dropped afterwards."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / f'{label}.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    name = f"cc_test_{RUN_ID}_{label}"
    await _admin(base, f'CREATE DATABASE "{name}"')
    engine = create_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate_to(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or with ``down`` downgrade) the schema to ``revision``."""

    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
