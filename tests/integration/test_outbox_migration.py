"""Migration 0016 gives every outbound text and mail still on its way an outbox row (and none to
those already handed over, failed or received, except texts sent under an idempotency key, which
keep it), on the engine of the run (SQLite, or PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.migration_db import empty_database, migrate_to

WHEN = sa.DateTime(timezone=True)
AT = datetime(2026, 12, 7, 10, 0, 0, 123456, tzinfo=UTC)
DUE = datetime(2026, 12, 7, 10, 5, tzinfo=UTC)
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
TEXTS = sa.table(
    "sms_messages",
    *(sa.column(c) for c in ("id", "direction", "kind", "customer_id", "message_sid", "idempotency_key")),
    *(sa.column(c) for c in ("from_number", "to_number", "body", "status", "error_message", "resends")),
    sa.column("media", sa.JSON()),
    sa.column("claimed_at", WHEN),
    sa.column("created_at", WHEN),
    sa.column("updated_at", WHEN),
)
MAIL = sa.table(
    "email_messages",
    *(sa.column(c) for c in ("id", "message_key", "direction", "kind", "status", "from_address")),
    *(sa.column(c) for c in ("subject", "text_body", "visible_text", "attempts", "last_error")),
    *(
        sa.column(c, sa.JSON())
        for c in ("to_addresses", "cc_addresses", "reference_ids", "headers", "defects")
    ),
    sa.column("next_attempt_at", WHEN),
    sa.column("created_at", WHEN),
)
OUTBOX = sa.table(
    "outbox",
    *(sa.column(c) for c in ("channel", "idempotency_key", "status", "sender_key", "attempts", "resends")),
    *(sa.column(c) for c in ("last_error", "sms_message_id", "email_message_id")),
    sa.column("claimed_at", WHEN),
    sa.column("next_attempt_at", WHEN),
)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with empty_database(tmp_path, "outbox_backfill") as engine:
        yield engine


def _text(id_: int, status: str, **values: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "direction": "outbound",
        "kind": "message",
        "customer_id": 1,
        "message_sid": None,
        "idempotency_key": None,
        "from_number": "+15005550006",
        "to_number": "+12025550100",
        "body": "你好 / hello",
        "status": status,
        "error_message": None,
        "resends": 0,
        "media": [],
        "claimed_at": None,
        "created_at": AT,
        "updated_at": AT,
        **values,
    }


def _mail(id_: int, status: str, direction: str = "outbound") -> dict[str, Any]:
    return {
        "id": id_,
        "message_key": f"m{id_}@example.com",
        "direction": direction,
        "kind": "reply" if direction == "outbound" else "message",
        "status": status,
        "from_address": "support@example.com",
        "subject": "",
        "text_body": "",
        "visible_text": "",
        "attempts": 2,
        "last_error": "451 try later" if status == "queued" else None,
        "to_addresses": ["ana@example.org"],
        "cc_addresses": [],
        "reference_ids": [],
        "headers": {},
        "defects": [],
        "next_attempt_at": DUE,
        "created_at": AT,
    }


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def test_messages_on_their_way_get_their_outbox_rows(engine: AsyncEngine) -> None:
    await migrate_to(engine, "0015")
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(CUSTOMERS).values(
                id=1, display_name="李娜", tags=[], consent={}, custom_fields={}, created_at=AT, updated_at=AT
            )
        )
        await conn.execute(
            sa.insert(TEXTS),
            [
                _text(1, "queued"),
                _text(2, "queued", idempotency_key="7:client-key", claimed_at=AT),
                _text(3, "unconfirmed", claimed_at=AT, resends=1, error_message="no answer"),
                _text(4, "delivered", message_sid="SM" + "1" * 32, claimed_at=AT),
                _text(5, "failed", error_message="opted out"),
                _text(6, "received", direction="inbound", message_sid="SM" + "2" * 32),
                _text(
                    7, "delivered", message_sid="SM" + "3" * 32, idempotency_key="7:sent-key", claimed_at=AT
                ),
            ],
        )
        await conn.execute(
            sa.insert(MAIL),
            [
                _mail(1, "queued"),
                _mail(2, "sending"),
                _mail(3, "sent"),
                _mail(4, "failed"),
                _mail(5, "received", "inbound"),
            ],
        )
    await migrate_to(engine, "0016")
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(OUTBOX))).mappings().all()
    found = {
        (row["channel"], row["sms_message_id"] or row["email_message_id"]): (
            row["idempotency_key"],
            row["status"],
            row["sender_key"],
            row["attempts"],
            row["resends"],
            _utc(row["claimed_at"]),
            row["last_error"],
        )
        for row in rows
    }
    assert found == {
        ("sms", 1): ("sms:#1", "queued", "+15005550006", 0, 0, None, None),
        ("sms", 2): ("sms:7:client-key", "claimed", "+15005550006", 1, 0, AT, None),
        ("sms", 3): ("sms:#3", "unconfirmed", "+15005550006", 1, 1, AT, "no answer"),
        ("sms", 7): ("sms:7:sent-key", "sent", "+15005550006", 1, 0, AT, None),
        ("email", 1): ("email:m1@example.com", "queued", "support@example.com", 2, 0, None, "451 try later"),
        ("email", 2): ("email:m2@example.com", "claimed", "support@example.com", 2, 0, AT, None),
    }
    due = {row["email_message_id"]: _utc(row["next_attempt_at"]) for row in rows if row["email_message_id"]}
    assert due == {1: DUE, 2: DUE}  # a queued mail keeps its retry time, a claimed one its lease
