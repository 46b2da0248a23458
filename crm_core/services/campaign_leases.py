"""Which instance paces a running campaign: a lease row per campaign, taken with one conditional
UPDATE (lapsed, or already mine) or a first INSERT, and renewed every tick, so a killed instance's
campaigns pass to another as soon as its lease lapses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models.campaign import CampaignDialerLease
from crm_core.sql import dialect_name, insert_module


async def take(
    session: AsyncSession, campaign_id: int, instance_id: str, now: datetime, ttl: timedelta
) -> bool:
    """Take or renew the campaign's lease for ``instance_id`` until ``now + ttl``; False when
    another instance holds it. The caller commits."""
    lease = CampaignDialerLease
    renewed = await session.execute(
        update(lease)
        .where(
            lease.campaign_id == campaign_id,
            or_(lease.lease_until <= now, lease.instance_id == instance_id),
        )
        .values(instance_id=instance_id, lease_until=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if getattr(renewed, "rowcount", 0) == 1:
        return True
    table = lease.__table__
    assert isinstance(table, Table)
    inserted = await session.execute(
        insert_module(dialect_name(session))
        .insert(table)
        .values(campaign_id=campaign_id, instance_id=instance_id, lease_until=now + ttl)
        .on_conflict_do_nothing(index_elements=["campaign_id"])
    )
    return getattr(inserted, "rowcount", 0) == 1


async def give_up(session: AsyncSession, campaign_ids: Iterable[int], instance_id: str) -> None:
    """Hand back this instance's leases (at shutdown), so another instance takes over at once."""
    ids = list(campaign_ids)
    if ids:
        await session.execute(
            delete(CampaignDialerLease).where(
                CampaignDialerLease.campaign_id.in_(ids), CampaignDialerLease.instance_id == instance_id
            )
        )
