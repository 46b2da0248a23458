"""Keeping service levels: business calendars, SLA policies and their escalation rules, each
checked before it is stored (a calendar that does not parse, a rule that could never fire)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import (
    EscalationAction,
    EscalationRule,
    ServiceCalendar,
    SlaPolicyRecord,
    SlaTarget,
    Team,
    Ticket,
    TicketSla,
)
from crm_core.rules.business_hours import BusinessHours
from crm_core.rules.business_time import BusinessCalendar, calendar_from_text
from crm_core.rules.ticket_status import ACTIVE_STATUSES
from crm_core.sql import insert_ignore
from crm_core.types import Channel, Priority

VOICE_CALENDAR = "voice"
POLICY_FIELDS = frozenset(
    {
        "name",
        "position",
        "active",
        "calendar_id",
        "priority",
        "channel",
        "team_id",
        "segment",
        "vip",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
    }
)
MAX_TARGET_MINUTES = 60 * 24 * 365


def checked_calendar(timezone: str, weekly: Mapping[str, str], holidays: Iterable[str]) -> BusinessCalendar:
    try:
        days = [date.fromisoformat(d) for d in holidays]
    except ValueError as exc:
        raise InvalidInput(f"holidays are ISO dates (YYYY-MM-DD): {exc}", "holidays") from exc
    calendar = calendar_from_text(timezone, weekly, days)
    if not calendar.has_open_hours():
        raise InvalidInput("a calendar needs open hours on at least one day", "weekly")
    return calendar


async def _unique_name(session: AsyncSession, model: Any, name: str, own_id: int | None) -> None:
    clash = await session.scalar(select(model.id).where(func.lower(model.name) == name.lower()))
    if clash is not None and clash != own_id:
        raise Conflict(f"{name!r} is taken")


async def reclock_open_tickets(session: AsyncSession, now: datetime) -> None:
    """After a calendar, policy or escalation level changed: the clock of every open ticket is
    checked at the next escalation pass, which chooses its policy again and recomputes its due
    times. (A ticket without a clock gets one at its next change, not at once: adding the first
    policy does not escalate the whole backlog in one pass.)"""
    open_tickets = select(Ticket.id).where(Ticket.status.in_(ACTIVE_STATUSES))
    await session.execute(
        update(TicketSla)
        .where(TicketSla.ticket_id.in_(open_tickets))
        .values(next_check_at=now)
        .execution_options(synchronize_session=False)
    )


async def list_calendars(session: AsyncSession) -> list[ServiceCalendar]:
    return list(await session.scalars(select(ServiceCalendar).order_by(ServiceCalendar.name)))


async def save_calendar(
    session: AsyncSession,
    *,
    name: str,
    timezone: str,
    weekly: Mapping[str, str],
    holidays: Iterable[str] = (),
    calendar_id: int | None = None,
) -> ServiceCalendar:
    """Create a calendar, or replace one's name and hours (``calendar_id``)."""
    calendar = checked_calendar(timezone, weekly, holidays)
    await _unique_name(session, ServiceCalendar, name, calendar_id)
    row = ServiceCalendar() if calendar_id is None else await session.get(ServiceCalendar, calendar_id)
    if row is None:
        raise NotFound(f"calendar {calendar_id} not found")
    row.name, row.timezone = name, timezone
    row.weekly = calendar.weekly_text()
    row.holidays = sorted({d.isoformat() for d in calendar.holidays})
    session.add(row)
    await session.flush()
    return row


async def seed_voice_calendar(session: AsyncSession, hours: BusinessHours, now: datetime) -> int | None:
    """The voice hours from the settings as the ``voice`` calendar, unless it exists already
    (instances starting together write it once); the new calendar's id, or None."""
    if await session.scalar(select(ServiceCalendar.id).where(ServiceCalendar.name == VOICE_CALENDAR)):
        return None
    calendar = BusinessCalendar.from_hours(hours)
    if not calendar.has_open_hours():
        return None
    values = {
        "name": VOICE_CALENDAR,
        "timezone": calendar.timezone,
        "weekly": calendar.weekly_text(),
        "holidays": sorted(d.isoformat() for d in calendar.holidays),
        "created_at": now,
        "updated_at": now,
    }
    seeded: int | None = await insert_ignore(session, ServiceCalendar, values, ["name"])
    return seeded


async def delete_row(session: AsyncSession, model: Any, row_id: int, what: str) -> None:
    row = await session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    await session.delete(row)
    await session.flush()


async def list_policies(session: AsyncSession) -> list[SlaPolicyRecord]:
    return list(
        await session.scalars(select(SlaPolicyRecord).order_by(SlaPolicyRecord.position, SlaPolicyRecord.id))
    )


async def save_policy(
    session: AsyncSession, values: Mapping[str, Any], *, policy_id: int | None = None
) -> SlaPolicyRecord:
    """Create a policy or change the given fields of one."""
    unknown = set(values) - POLICY_FIELDS
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    row = SlaPolicyRecord() if policy_id is None else await session.get(SlaPolicyRecord, policy_id)
    if row is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    if policy_id is None and not values.get("name"):
        raise InvalidInput("a policy needs a name", "name")
    if "name" in values:
        await _unique_name(session, SlaPolicyRecord, values["name"], policy_id)
    if (
        values.get("calendar_id") is not None
        and await session.get(ServiceCalendar, values["calendar_id"]) is None
    ):
        raise InvalidInput(f"calendar {values['calendar_id']} does not exist", "calendar_id")
    if values.get("team_id") is not None and await session.get(Team, values["team_id"]) is None:
        raise InvalidInput(f"team {values['team_id']} does not exist", "team_id")
    for name in ("first_response_minutes", "next_response_minutes", "resolution_minutes"):
        minutes = values.get(name)
        if minutes is not None and not 1 <= minutes <= MAX_TARGET_MINUTES:
            raise InvalidInput(f"a target is 1 to {MAX_TARGET_MINUTES} business minutes", name)
    converters = {"priority": Priority, "channel": Channel}
    for name, value in values.items():
        convert = converters.get(name)
        setattr(row, name, convert(value) if convert is not None and value is not None else value)
    if row.position is None:
        row.position = 100
    if row.active is None:
        row.active = True
    session.add(row)
    await session.flush()
    return row


@dataclass(frozen=True, slots=True)
class RuleDraft:
    target: SlaTarget
    level: int
    percent: int | None = None
    after_breach_minutes: int | None = None
    actions: tuple[EscalationAction, ...] = field(default_factory=tuple)
    reassign_team_id: int | None = None


async def list_rules(session: AsyncSession, policy_id: int) -> list[EscalationRule]:
    if await session.get(SlaPolicyRecord, policy_id) is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    stmt = select(EscalationRule).where(EscalationRule.policy_id == policy_id)
    return list(await session.scalars(stmt.order_by(EscalationRule.target, EscalationRule.level)))


async def add_rule(session: AsyncSession, policy_id: int, draft: RuleDraft) -> EscalationRule:
    """One escalation level: at ``percent`` of the target, or ``after_breach_minutes`` past it."""
    policy = await session.get(SlaPolicyRecord, policy_id)
    if policy is None:
        raise NotFound(f"SLA policy {policy_id} not found")
    if (draft.percent is None) == (draft.after_breach_minutes is None):
        raise InvalidInput("give either percent or after_breach_minutes", "percent")
    if not draft.actions:
        raise InvalidInput("an escalation level needs at least one action", "actions")
    team = await session.get(Team, draft.reassign_team_id) if draft.reassign_team_id is not None else None
    if EscalationAction.REASSIGN_TEAM in draft.actions and team is None:
        raise InvalidInput("reassigning needs an existing team", "reassign_team_id")
    clash = await session.scalar(
        select(EscalationRule.id).where(
            EscalationRule.policy_id == policy_id,
            EscalationRule.target == draft.target,
            EscalationRule.level == draft.level,
        )
    )
    if clash is not None:
        raise Conflict(f"level {draft.level} of {draft.target} exists in this policy")
    rule = EscalationRule(
        policy_id=policy_id,
        target=draft.target,
        level=draft.level,
        percent=draft.percent,
        after_breach_minutes=draft.after_breach_minutes,
        actions=[str(a) for a in dict.fromkeys(draft.actions)],
        reassign_team_id=draft.reassign_team_id,
    )
    session.add(rule)
    await session.flush()
    return rule
