"""Two running instances of the service, on simulated clocks, share one database: their
escalation jobs fire each level once per ticket, at the moment it comes due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from contact_center.app import create_app
from contact_center.service_levels.wiring import ESCALATION_EVERY
from contact_center.settings import Settings
from crm_core.clock import FakeClock
from crm_core.db import UnitOfWorkFactory
from crm_core.models import (
    AuditEntry,
    EscalationFiring,
    EscalationRule,
    ServiceCalendar,
    SlaPolicyRecord,
    SlaTarget,
    Ticket,
)
from crm_core.services.customers import create_customer
from crm_core.services.tickets import SlaPolicy, open_ticket
from crm_core.types import Priority
from tests.conftest import Staff, isolated_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")
NY = ZoneInfo("America/New_York")
MONDAY_9 = datetime(2026, 1, 12, 9, tzinfo=NY)
TICKETS = 4


@pytest_asyncio.fixture(loop_scope="session")
async def instances(settings: Settings, uow_factory: UnitOfWorkFactory) -> AsyncIterator[list[FakeClock]]:
    clocks = [FakeClock(MONDAY_9), FakeClock(MONDAY_9)]
    site = isolated_settings(settings)
    async with (
        TestClient(TestServer(create_app(site, clock=clocks[0]))) as _first,
        TestClient(TestServer(create_app(site, clock=clocks[1]))) as _second,
    ):
        yield clocks


async def _policy(uow_factory: UnitOfWorkFactory, staff: Staff) -> None:
    async with uow_factory() as uow:
        s = uow.session
        weekdays = {d: "09:00-17:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
        calendar = ServiceCalendar(name="New York", timezone="America/New_York", weekly=weekdays, holidays=[])
        s.add(calendar)
        await s.flush()
        policy = SlaPolicyRecord(name="Standard", calendar_id=calendar.id, first_response_minutes=60)
        s.add(policy)
        await s.flush()
        first = SlaTarget.FIRST_RESPONSE
        s.add_all(
            [
                EscalationRule(policy_id=policy.id, target=first, level=1, percent=75, actions=["notify_assignee"]),
                EscalationRule(
                    policy_id=policy.id, target=first, level=2, after_breach_minutes=0,
                    actions=["notify_supervisor", "raise_priority"],
                ),
                EscalationRule(
                    policy_id=policy.id, target=first, level=3, after_breach_minutes=60,
                    actions=["reassign_team", "notify_admin"], reassign_team_id=staff.blue.id,
                ),
            ]
        )  # fmt: skip
        for n in range(TICKETS):
            customer = await create_customer(uow, None, region="US", display_name=f"客户 {n}")
            await open_ticket(
                uow, None, customer_id=customer.id, subject=f"Outage {n}", sla=SlaPolicy(),
                assignee_id=staff.red_1.id, team_id=staff.red.id, now=MONDAY_9,
            )  # fmt: skip
        await uow.commit()


async def _levels(uow_factory: UnitOfWorkFactory) -> list[int]:
    async with uow_factory() as uow:
        return sorted(await uow.session.scalars(select(EscalationFiring.level)))


async def _until(uow_factory: UnitOfWorkFactory, expected: list[int]) -> list[int]:
    """The levels fired once the instances' passes are done (they run as background jobs)."""
    for _ in range(200):
        found = await _levels(uow_factory)
        if found == expected:
            await asyncio.sleep(0.05)  # a pass still running would show up now
            return await _levels(uow_factory)
        await asyncio.sleep(0.02)
    return await _levels(uow_factory)


async def test_two_instances_fire_each_level_once_at_its_moment(
    instances: list[FakeClock], uow_factory: UnitOfWorkFactory, staff: Staff
) -> None:
    await _policy(uow_factory, staff)

    def move(minutes: float) -> None:
        for clock in instances:
            clock.advance(minutes * 60)

    move(44)  # 09:44: 75% of the hour not reached
    assert await _until(uow_factory, []) == []
    move(1 + ESCALATION_EVERY / 60)  # past 09:45
    assert await _until(uow_factory, [1] * TICKETS) == [1] * TICKETS
    move(15)  # past 10:00, the breach
    assert await _until(uow_factory, sorted([1, 2] * TICKETS)) == sorted([1, 2] * TICKETS)
    for _ in range(4):  # the next hour, pass after pass on both instances
        move(15)
    assert await _until(uow_factory, sorted([1, 2, 3] * TICKETS)) == sorted([1, 2, 3] * TICKETS)
    move(120)
    await asyncio.sleep(0.1)
    assert await _levels(uow_factory) == sorted([1, 2, 3] * TICKETS)
    async with uow_factory() as uow:
        s = uow.session
        history = await s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "sla.escalated")
        )
        tickets: list[Any] = list(await s.scalars(select(Ticket)))
    assert history == 3 * TICKETS
    assert all(t.priority is Priority.HIGH and t.team_id == staff.blue.id for t in tickets)
    assert all(t.first_response_due_at == (MONDAY_9 + timedelta(hours=1)) for t in tickets)
