"""Migration 0010 moves a call's routing state out of the interaction's metadata into columns, and
its downgrade puts it back, on the engine of the run (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_core.db import migrate
from tests.support.migration_db import empty_database, migrate_to

WHEN = sa.DateTime(timezone=True)
AT = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
CUSTOMERS = sa.table(
    "customers",
    sa.column("id", sa.Integer()),
    sa.column("display_name", sa.String()),
    sa.column("tags", sa.JSON()),
    sa.column("consent", sa.JSON()),
    sa.column("custom_fields", sa.JSON()),
    sa.column("created_at", WHEN),
    sa.column("updated_at", WHEN),
)
INTERACTIONS = sa.table(
    "interactions",
    sa.column("id", sa.Integer()),
    sa.column("channel", sa.String()),
    sa.column("direction", sa.String()),
    sa.column("customer_id", sa.Integer()),
    sa.column("external_id", sa.String()),
    sa.column("status", sa.String()),
    sa.column("started_at", WHEN),
    sa.column("metadata", sa.JSON()),
    sa.column("created_at", WHEN),
)
STATE = (
    "call_decision",
    "routed_agent_id",
    "queued_at",
    "offered_at",
    "answered_at",
    "answered_by_id",
    "status_sequence",
    "missed",
)
# Metadata as the call desk wrote it before the columns: answered, missed, and unusual values.
ANSWERED = {
    "from": "+12025550100",
    "to": "+15005550006",
    "caller_name": None,
    "decision": "enqueue",
    "routed_agent_id": None,
    "queued_at": "2026-12-07T10:00:00.123456+00:00",
    "offered_at": "2026-12-07T10:00:05+00:00",
    "answered_at": "2026-12-07T10:00:09.5+00:00",
    "answered_by": 7,
    "sequence": 3,
    "recording_url": "https://example.test/r.mp3",
}
MISSED = {
    "from": "+12025550100",
    "decision": "connect-agent",
    "routed_agent_id": 4,
    "sequence": 0,
    "missed": True,
    "unrouted": True,
}
ODD = {"decision": 12, "routed_agent_id": True, "queued_at": "yesterday", "sequence": "3", "missed": "yes"}


@pytest_asyncio.fixture(loop_scope="session")
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with empty_database(tmp_path, "call_state") as engine:
        yield engine


async def _rows(engine: AsyncEngine, *columns: str) -> dict[str, tuple[Any, ...]]:
    table = sa.table(
        "interactions",
        sa.column("external_id", sa.String()),
        sa.column("metadata", sa.JSON()),
        *(
            sa.column(c, WHEN if c.endswith("_at") else sa.Boolean() if c == "missed" else None)
            for c in columns
        ),
    )
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(table))
        return {row[0]: tuple(row[1:]) for row in result}


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC) if value.tzinfo is None else value


@pytest.mark.asyncio(loop_scope="session")
async def test_call_state_moves_into_columns_and_back(engine: AsyncEngine) -> None:
    await migrate(engine, "0009")
    async with engine.begin() as conn:
        customer = (
            await conn.execute(
                CUSTOMERS.insert()
                .values(
                    display_name="Ada", tags=[], consent={}, custom_fields={}, created_at=AT, updated_at=AT
                )
                .returning(CUSTOMERS.c.id)
            )
        ).scalar_one()
        rows = [
            ("voice", "CA-answered", ANSWERED),
            ("voice", "CA-missed", MISSED),
            ("voice", "CA-odd", ODD),
            ("voice", "CA-plain", {"from": "+12025550100"}),
            ("sms", "SM-1", {"missed": True, "decision": "x"}),  # not a call: left alone
        ]
        await conn.execute(
            INTERACTIONS.insert(),
            [
                {
                    "channel": channel,
                    "direction": "inbound",
                    "customer_id": customer,
                    "external_id": sid,
                    "status": "completed",
                    "started_at": AT,
                    "metadata": meta,
                    "created_at": AT,
                }
                for channel, sid, meta in rows
            ],
        )

    await migrate_to(engine, "0010")
    found = await _rows(engine, *STATE)
    meta, *state = found["CA-answered"]
    assert meta == {
        "from": "+12025550100",
        "to": "+15005550006",
        "caller_name": None,
        "recording_url": "https://example.test/r.mp3",
    }
    decision, routed, queued, offered, answered, answered_by, sequence, missed = state
    assert (decision, routed, answered_by, sequence, missed) == ("enqueue", None, 7, 3, False)
    assert [_utc(queued), _utc(offered), _utc(answered)] == [
        AT,
        datetime(2026, 12, 7, 10, 0, 5, tzinfo=UTC),
        datetime(2026, 12, 7, 10, 0, 9, 500000, tzinfo=UTC),
    ]
    assert found["CA-missed"] == (
        {"from": "+12025550100", "unrouted": True},
        "connect-agent",
        4,
        None,
        None,
        None,
        None,
        0,
        True,
    )
    assert found["CA-odd"] == ({}, None, None, None, None, None, None, None, False)
    assert found["CA-plain"] == ({"from": "+12025550100"}, *([None] * 7), False)
    assert found["SM-1"] == ({"missed": True, "decision": "x"}, *([None] * 7), False)

    await migrate_to(engine, "0009", down=True)
    back = {sid: row[0] for sid, row in (await _rows(engine)).items()}
    assert back["CA-answered"] == {
        **ANSWERED,
        "queued_at": AT.isoformat(),
        "answered_at": "2026-12-07T10:00:09.500000+00:00",
    }
    assert back["CA-missed"] == MISSED
    assert back["CA-plain"] == {"from": "+12025550100"}
    assert back["SM-1"] == {"missed": True, "decision": "x"}
    async with engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns("interactions")}
        )
    assert not names & set(STATE)
