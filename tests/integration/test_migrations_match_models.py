"""The Alembic migrations build exactly the schema the models describe, on either engine."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from contact_center.settings import Settings
from crm_core.db import alembic_config, create_engine
from crm_core.models import Base


def _in_models(name: str | None, _type: str, _parents: Any) -> bool:
    """The knowledge base's search indexes (PostgreSQL expression indexes, SQLite's FTS5 table and
    its shadow tables) are built by their migration outside the models."""
    return not (name or "").startswith("kb_search")


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _in_models})
    return list(compare_metadata(context, Base.metadata))


def test_migration_history_is_one_line() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several migration heads: {script.get_heads()}"


@pytest.mark.asyncio(loop_scope="session")
async def test_migrated_schema_matches_models(settings: Settings, migrated: None) -> None:
    engine = create_engine(settings.database.url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    assert diff == []
