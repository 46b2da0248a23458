"""The one way shared work is claimed by exactly one instance: an outbox row, a dialer's contact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.sql import dialect_name


async def claim(
    session: AsyncSession,
    model: Any,
    *,
    where: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
    order_by: Sequence[Any] = (),
    limit: int = 1,
) -> list[int]:
    """Claim up to ``limit`` rows of ``model`` matching ``where``, in ``order_by`` order: set
    ``values`` on them and return their ids, each claimed by exactly one caller.

    On PostgreSQL the candidates are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent senders
    take different rows without waiting for each other; on SQLite (one writer at a time) the
    update is the lock. Either way the update checks ``where`` again (a compare-and-set): a row
    another sender claimed in between is not claimed twice. The caller commits.
    """
    pick = select(model.id).where(*where).order_by(*order_by).limit(limit)
    if dialect_name(session) == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = list(await session.scalars(pick))
    if not ids:
        return []
    taken = await session.execute(
        update(model)
        .where(model.id.in_(ids), *where)
        .values(**values)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    won = set(taken.scalars())
    return [id_ for id_ in ids if id_ in won]
