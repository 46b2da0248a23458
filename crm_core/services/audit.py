"""Writing audit entries for customers and tickets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import AuditEntry


def audit(
    session: AsyncSession,
    entity_type: str,
    entity_id: int,
    action: str,
    actor_id: int | None,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        entity_type=entity_type, entity_id=entity_id, action=action, actor_id=actor_id, changes=changes or {}
    )
    session.add(entry)
    return entry


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``{field: [old, new]}`` for every field whose value changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


async def history(session: AsyncSession, entity_type: str, entity_id: int) -> Sequence[AuditEntry]:
    """Every audit entry of one customer or ticket, oldest first (check visibility before calling)."""
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == entity_id)
        .order_by(AuditEntry.id)
    )
    return list(rows)
