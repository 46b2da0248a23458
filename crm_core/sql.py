"""Dialect-aware statements the ORM does not spell the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Base


async def insert_ignore(
    session: AsyncSession, model: type[Base], values: dict[str, Any], conflict_columns: Sequence[str]
) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING; return the new row's primary key, or None if it existed."""
    table = model.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*table.primary_key.columns)
    )
    result = await session.execute(stmt)
    return result.scalar_one_or_none()
