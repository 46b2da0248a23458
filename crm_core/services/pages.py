"""One page of a list query, with the total the whole query matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int


async def paginate(
    session: AsyncSession, stmt: Select[tuple[T]], *order_by: Any, limit: int, offset: int
) -> Page[T]:
    """Count what ``stmt`` matches, then fetch ``limit`` rows from ``offset`` in ``order_by`` order."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = await session.scalars(stmt.order_by(*order_by).limit(limit).offset(offset))
    return Page(list(rows), total)
