"""The supervisors' wallboard figures, and what the agent console needs to know about this service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import Field, field_validator

from contact_center.api.responses import json_out
from contact_center.api.schemas import Input, Output, TicketOut
from contact_center.api.spec import ApiRoutes, parse_query
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import require_role, viewer_of
from contact_center.twilio_account import SANDBOX_PREFIX, uses_sandbox
from crm_core.models import Role
from crm_core.services.stats import call_figures, channel_volumes, live_chats, tickets_at_risk
from crm_core.types import Channel

routes = ApiRoutes("wallboard")
_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
AT_RISK_WITHIN = timedelta(hours=1)
MAX_LOOKBACK = timedelta(days=31)


class WallboardQuery(Input):
    since: datetime | None = Field(
        default=None,
        description="Start of the period (ISO 8601 date and time; UTC without an offset); default: "
        "today's midnight UTC. At most 31 days back, and not after now.",
    )

    @field_validator("since", mode="before")
    @classmethod
    def _iso_8601(cls, value: Any) -> Any:
        """A date and time as documented: a bare number would otherwise be read as Unix seconds."""
        if not isinstance(value, str):
            return value
        try:
            if not _DATE_AND_TIME.match(value):
                raise ValueError
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("an ISO 8601 date and time, such as 2024-05-01T08:00:00+00:00") from None


class ChannelVolumeOut(Output):
    channel: Channel
    inbound: int
    outbound: int


class CallFiguresOut(Output):
    offered: int = Field(description="Inbound calls that arrived")
    answered: int
    abandoned: int = Field(description="Ended without reaching an agent and left no voicemail")
    average_speed_of_answer_seconds: float | None


class LiveChatOut(Output):
    interaction_id: int
    customer_id: int
    customer_name: str
    agent_id: int | None
    status: str = Field(description="waiting (for an agent) or active")
    started_at: datetime


class TicketAtRiskOut(Output):
    ticket: TicketOut
    due_at: datetime = Field(description="The next due time: first response, else resolution")
    breached: bool


class WallboardOut(Output):
    since: datetime
    now: datetime
    volumes: list[ChannelVolumeOut]
    calls: CallFiguresOut
    tickets_at_risk: list[TicketAtRiskOut] = Field(
        description="Active tickets past or within an hour of their due time, most urgent first"
    )
    chats: list[LiveChatOut] = Field(description="Chats waiting or going on now, oldest first")


class ConsoleConfigOut(Output):
    softphone: str = Field(
        description="How calls are answered: 'twilio' (Voice SDK in the browser, token from "
        "/voice/token), 'sandbox' (the built-in Twilio sandbox's simulated browser) or 'none'"
    )
    sandbox_base: str | None = Field(description="Path of the mounted sandbox, when there is one")
    dispositions: list[str] = Field(description="Call outcomes accepted by /calls/{id}/outcome")
    wrap_up_seconds: float
    channels: list[Channel]


@routes.route(
    "GET",
    "/wallboard",
    summary="Today's volumes per channel, answered/abandoned calls, speed of answer, tickets at risk, "
    "live chats (supervisors: their team; admins: everything)",
    query=WallboardQuery,
    response=WallboardOut,
)
async def wallboard(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_role(viewer, Role.ADMIN, Role.SUPERVISOR)
    query = parse_query(request, WallboardQuery)
    runtime = request.app[RUNTIME]
    now = runtime.clock.now()
    since = query.since or datetime(now.year, now.month, now.day, tzinfo=UTC)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    # Within the last 31 days, and never later than now: a time past the calendar's end in UTC
    # (9999-12-31 at a negative offset) is refused by the database driver.
    since = min(max(since, now - MAX_LOOKBACK), now)
    async with runtime.uow() as uow:
        volumes = await channel_volumes(uow.session, viewer, since)
        calls = await call_figures(uow.session, viewer, since)
        at_risk = await tickets_at_risk(uow.session, viewer, now, within=AT_RISK_WITHIN)
        chats = await live_chats(uow.session, viewer)
        out = WallboardOut(
            since=since,
            now=now,
            volumes=[ChannelVolumeOut.model_validate(v) for v in volumes],
            calls=CallFiguresOut.model_validate(calls),
            tickets_at_risk=[
                TicketAtRiskOut(
                    ticket=TicketOut.model_validate(r.ticket), due_at=r.due_at, breached=r.breached
                )
                for r in at_risk
            ],
            chats=[LiveChatOut.model_validate(c) for c in chats],
        )
    return json_out(out)


@routes.route(
    "GET",
    "/console/config",
    summary="What the agent console needs: how calls are answered, dispositions, wrap-up time",
    response=ConsoleConfigOut,
)
async def console_config(request: web.Request) -> web.Response:
    viewer_of(request)
    settings = request.app[RUNTIME].settings
    twilio = settings.twilio
    sandbox = uses_sandbox(settings)
    if twilio.api_key_sid and twilio.api_key_secret.get_secret_value() and twilio.twiml_app_sid:
        softphone = "twilio"
    else:
        softphone = "sandbox" if sandbox else "none"
    out = ConsoleConfigOut(
        softphone=softphone,
        sandbox_base=SANDBOX_PREFIX if sandbox else None,
        dispositions=list(settings.voice.dispositions),
        wrap_up_seconds=settings.voice.wrap_up_seconds,
        channels=list(Channel),
    )
    return json_out(out)
