"""Alembic environment: runs on the connection handed over by :func:`crm_core.db.migrate`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from crm_core.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Command-line alembic: build an engine from sqlalchemy.url.
    from crm_core.db import create_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or use `contact-center migrate`")

    async def _go() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_go())


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; use `contact-center migrate`")
run_migrations_online()
