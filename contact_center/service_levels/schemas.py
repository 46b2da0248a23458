"""Request and response bodies of the service-level API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator

from contact_center.api.schemas import Id, Input, Name, Output, not_null
from crm_core.models import EscalationAction, SlaTarget
from crm_core.types import Channel, Priority

Minutes = Annotated[int, Field(ge=1, le=60 * 24 * 365, description="business minutes")]
Position = Annotated[int, Field(ge=0, le=1_000_000)]
Weekly = Annotated[
    dict[str, Annotated[str, Field(max_length=200)]],
    Field(description='{"monday": "08:00-12:00, 13:00-18:00", ...}; a day left out is closed'),
]
Holidays = Annotated[
    list[Annotated[str, Field(max_length=10)]], Field(max_length=1000, description="YYYY-MM-DD")
]


class CalendarIn(Input):
    name: Name
    timezone: str = Field(max_length=64, description="IANA zone, e.g. America/New_York or Asia/Shanghai")
    weekly: Weekly
    holidays: Holidays = []


class CalendarOut(Output):
    id: int
    name: str
    timezone: str
    weekly: dict[str, str]
    holidays: list[str]


class CalendarList(Output):
    items: list[CalendarOut]


class PolicyIn(Input):
    name: Name
    position: Position = 100
    active: bool = True
    calendar_id: Id | None = None
    priority: Priority | None = None
    channel: Channel | None = None
    team_id: Id | None = None
    segment: str | None = Field(default=None, max_length=100)
    vip: bool | None = None
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None


class PolicyUpdate(Input):
    name: Name | None = None
    position: Position | None = None
    active: bool | None = None
    calendar_id: Id | None = None
    priority: Priority | None = None
    channel: Channel | None = None
    team_id: Id | None = None
    segment: str | None = Field(default=None, max_length=100)
    vip: bool | None = None
    first_response_minutes: Minutes | None = None
    next_response_minutes: Minutes | None = None
    resolution_minutes: Minutes | None = None

    _not_null = field_validator("name", "position", "active")(not_null)


class PolicyOut(Output):
    id: int
    name: str
    position: int
    active: bool
    calendar_id: int | None
    priority: Priority | None
    channel: Channel | None
    team_id: int | None
    segment: str | None
    vip: bool | None
    first_response_minutes: int | None
    next_response_minutes: int | None
    resolution_minutes: int | None


class PolicyList(Output):
    items: list[PolicyOut]


class RuleIn(Input):
    target: SlaTarget
    level: int = Field(ge=1, le=20)
    percent: int | None = Field(default=None, ge=1, le=100, description="of the target's business time")
    after_breach_minutes: int | None = Field(
        default=None, ge=0, le=60 * 24 * 30, description="after the due time"
    )
    actions: list[EscalationAction] = Field(min_length=1, max_length=5)
    reassign_team_id: Id | None = None


class RuleOut(Output):
    id: int
    policy_id: int
    target: SlaTarget
    level: int
    percent: int | None
    after_breach_minutes: int | None
    actions: list[str]
    reassign_team_id: int | None


class RuleList(Output):
    items: list[RuleOut]


class FiringOut(Output):
    target: SlaTarget
    level: int
    fired_at: datetime


class TicketSlaOut(Output):
    ticket_id: int
    policy_id: int | None
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    paused: bool
    escalations: list[FiringOut]
