"""A messaging webhook whose database connection is found dead on use (kept from before a restart
or failover of the database) is answered again on a new connection instead of failing with a 500;
the text is stored once (by MessageSid), as Twilio's own retries would leave it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import DBAPIError

from contact_center.sms.routes import SMS_DESK
from crm_core.db import UnitOfWorkFactory
from crm_core.types import Direction
from tests.support.sms import Twilio, sms_rows


def dead_connection() -> DBAPIError:
    closed = ConnectionResetError("connection was closed in the middle of operation")
    return DBAPIError("SELECT 1", {}, closed, connection_invalidated=True)


def failing_first(work: Callable[[Any], Awaitable[None]], error: Exception) -> tuple[Any, list[int]]:
    """``work`` that raises ``error`` on its first call (after doing its part, uncommitted)."""
    calls: list[int] = []

    async def once_broken(item: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise error
        await work(item)

    return once_broken, calls


async def test_a_text_whose_connection_is_found_dead_is_stored_on_a_new_one(
    service: TestClient[Any, Any], uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = service.app[SMS_DESK].get()
    broken, calls = failing_first(desk.message_received, dead_connection())
    monkeypatch.setattr(desk, "message_received", broken)
    sid = await Twilio(service).text("Where is my order?")  # asserts a 200
    assert len(calls) == 2
    inbound = [r for r in await sms_rows(uow_factory) if r.direction == Direction.INBOUND]
    assert [r.message_sid for r in inbound] == [sid]


async def test_other_failures_are_not_answered_twice(
    service: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = service.app[SMS_DESK].get()
    broken, calls = failing_first(desk.message_received, RuntimeError("a defect"))
    monkeypatch.setattr(desk, "message_received", broken)
    with pytest.raises(AssertionError):
        await Twilio(service).text("Where is my order?")
    assert len(calls) == 1
