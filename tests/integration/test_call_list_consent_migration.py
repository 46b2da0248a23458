"""Migration 0020 copies each customer's voice consent onto their call-list rows (a "yes" only
when the customer's consent says true), on the engine of the run (SQLite, or PostgreSQL with
DATABASE_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.migration_db import empty_database, migrate_to

WHEN = sa.DateTime(timezone=True)
AT = datetime(2026, 12, 7, 10, tzinfo=UTC)
CUSTOMERS = sa.table(
    "customers",
    *(sa.column(c) for c in ("id", "display_name")),
    *(sa.column(c, sa.JSON()) for c in ("tags", "consent", "custom_fields")),
    *(sa.column(c, WHEN) for c in ("created_at", "updated_at")),
)
CAMPAIGNS = sa.table(
    "campaigns",
    *(sa.column(c) for c in ("id", "name", "mode", "status", "caller_id", "script_template")),
    *(sa.column(c) for c in ("regulatory_profile", "abandonment_target", "schedule_timezone")),
    *(sa.column(c) for c in ("machine_action", "price_per_minute")),
    sa.column("zone_keys", sa.JSON()),
    *(sa.column(c, WHEN) for c in ("created_at", "updated_at")),
)
CONTACTS = sa.table(
    "campaign_contacts",
    *(sa.column(c) for c in ("id", "campaign_id", "customer_id", "e164", "state", "zone_key")),
    *(sa.column(c) for c in ("attempts", "attempts_today")),
    *(sa.column(c, WHEN) for c in ("next_attempt_at", "created_at")),
)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with empty_database(tmp_path, "consent_backfill") as engine:
        yield engine


async def test_the_migration_copies_each_customers_voice_consent(engine: AsyncEngine) -> None:
    await migrate_to(engine, "0019")
    consents = [{"voice": True}, {"voice": False}, {}, {"sms": True}]
    async with engine.begin() as conn:
        await conn.execute(
            CUSTOMERS.insert(),
            [
                {
                    "id": i,
                    "display_name": f"李华 {i}",
                    "tags": [],
                    "consent": consent,
                    "custom_fields": {},
                    "created_at": AT,
                    "updated_at": AT,
                }
                for i, consent in enumerate(consents, start=1)
            ],
        )
        await conn.execute(
            CAMPAIGNS.insert().values(
                id=1,
                name="Winter renewals",
                mode="preview",
                status="running",
                caller_id="+12125550199",
                script_template="",
                regulatory_profile="us",
                abandonment_target=0.03,
                schedule_timezone="America/New_York",
                machine_action="hangup",
                price_per_minute=0,
                zone_keys=[],
                created_at=AT,
                updated_at=AT,
            )
        )
        await conn.execute(
            CONTACTS.insert(),
            [
                {
                    "id": i,
                    "campaign_id": 1,
                    "customer_id": i,
                    "e164": f"+121255501{i:02d}",
                    "state": "pending",
                    "zone_key": "America/New_York",
                    "attempts": 0,
                    "attempts_today": 0,
                    "next_attempt_at": AT,
                    "created_at": AT,
                }
                for i in range(1, len(consents) + 1)
            ],
        )
    await migrate_to(engine, "0020")
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT id, voice_consent FROM campaign_contacts ORDER BY id"))
        assert [(i, bool(v)) for i, v in rows] == [(1, True), (2, False), (3, False), (4, False)]
