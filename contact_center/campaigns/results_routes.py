"""A campaign's results for the supervisor's live page: the results as a CSV file, and the last
hour's activity (dials a minute, conversations in the hour, abandonment over 24 hours and over
30 days against the campaign's target). Same visibility as the results themselves."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from contact_center.api.responses import json_out
from contact_center.api.schemas import Output
from contact_center.api.spec import ApiRoutes, path_int
from contact_center.appkeys import RUNTIME
from contact_center.auth.middleware import viewer_of
from contact_center.campaigns.routes import desk_of
from contact_center.campaigns.schemas import AbandonmentOut
from crm_core.models import Agent, CampaignAttempt, DialOutcome
from crm_core.models.campaign import CampaignAgent
from crm_core.rules.abandonment import abandonment_status
from crm_core.services import campaigns
from crm_core.services.campaign_attempts import window_counts
from crm_core.services.campaign_results import CampaignResults, campaign_results
from crm_core.services.campaigns import profile_of

routes = ApiRoutes("campaign results")
HOUR = timedelta(hours=1)


class WorkingAgentOut(Output):
    agent_id: int
    display_name: str
    state: str
    since: datetime
    joined_at: datetime


class CampaignActivityOut(Output):
    at: datetime
    dials_per_minute: list[int] = Field(
        description="Dials started in each of the last 60 minutes, oldest first",
    )
    dials_last_hour: int
    conversations_last_hour: int = Field(description="Answers joined to an agent in the last hour")
    calls_in_flight: int = Field(description="Dials of the last hour not ended yet")
    abandonment_24h: AbandonmentOut
    abandonment_30d: AbandonmentOut
    agents: list[WorkingAgentOut] = Field(description="The agents working the campaign now")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def results_rows(results: CampaignResults) -> list[tuple[str, str]]:
    """The results as (metric, value) rows: totals, then each disposition and list state."""
    rows = [
        (name, str(getattr(results, name)))
        for name in (
            "dials",
            "live_answers",
            "conversations",
            "abandoned",
            "machines",
            "no_answers",
            "busy",
            "failed",
            "talk_seconds",
            "cost",
            "revenue",
            "contacts",
        )
    ]
    rows.append(("roi", "" if results.roi is None else str(results.roi)))
    rows.append(("penetration", f"{results.penetration:.4f}"))
    rows.append(("abandonment_rate", f"{results.abandonment.rate:.4f}"))
    rows.append(("abandonment_limit", f"{results.abandonment.limit:.4f}"))
    rows += [(f"disposition:{code}", str(n)) for code, n in results.by_disposition.items()]
    rows += [(f"state:{state}", str(n)) for state, n in sorted(results.contacts_by_state.items())]
    return rows


def _safe_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@routes.route(
    "GET",
    "/campaigns/{id}/results.csv",
    summary="The campaign's results as a CSV file (metric, value)",
    produces="text/csv",
)
async def campaign_results_csv(request: web.Request) -> web.Response:
    desk = desk_of(request)
    viewer = viewer_of(request)
    campaign_id = path_int(request)
    async with desk.uow() as uow:
        campaign = await campaigns.get_visible(uow.session, viewer, campaign_id)
        results = await campaign_results(uow.session, campaign, desk.clock.now())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("metric", "value"))
    writer.writerows((_safe_cell(k), _safe_cell(v)) for k, v in results_rows(results))
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-results.csv"',
            "Cache-Control": "no-store",
        },
    )


@routes.route(
    "GET",
    "/campaigns/{id}/activity",
    summary="The campaign now: the agents working it and their state, calls in flight, the last "
    "hour's dials a minute and conversations, and abandonment over 24 hours and 30 days against "
    "its target",
    response=CampaignActivityOut,
)
async def campaign_activity(request: web.Request) -> web.Response:
    desk = desk_of(request)
    now = _utc(desk.clock.now())
    async with desk.uow() as uow:
        campaign = await campaigns.get_visible(uow.session, viewer_of(request), path_int(request))
        attempt = CampaignAttempt
        rows = (
            await uow.session.execute(
                select(attempt.started_at, attempt.ended_at, attempt.outcome, attempt.abandoned).where(
                    attempt.campaign_id == campaign.id, attempt.started_at > now - HOUR
                )
            )
        ).all()
        working = (
            await uow.session.execute(
                select(CampaignAgent.agent_id, Agent.display_name, CampaignAgent.joined_at)
                .join(Agent, Agent.id == CampaignAgent.agent_id)
                .where(CampaignAgent.campaign_id == campaign.id)
                .order_by(Agent.display_name, Agent.id)
            )
        ).all()
        profile = profile_of(campaign)
        windows = {}
        for label, length in (("24h", timedelta(hours=24)), ("30d", timedelta(days=30))):
            window = dataclasses.replace(profile, abandonment_window=length)
            status = abandonment_status(await window_counts(uow.session, campaign.id, now, window), window)
            windows[label] = AbandonmentOut(
                abandoned=status.abandoned,
                live=status.live,
                rate=status.rate,
                limit=status.limit,
                predictive_allowed=status.predictive_allowed,
            )
    presence = await request.app[RUNTIME].presence.get_many([a for a, _, _ in working])
    agents = []
    for agent_id, display_name, joined_at in working:
        now_state = presence[agent_id].at(now)
        agents.append(
            WorkingAgentOut(
                agent_id=agent_id,
                display_name=display_name,
                state=now_state.state.value,
                since=now_state.since,
                joined_at=_utc(joined_at),
            )
        )
    per_minute = [0] * 60
    conversations = in_flight = 0
    for started_at, ended_at, outcome, abandoned in rows:
        in_flight += ended_at is None
        age = int((now - _utc(started_at)).total_seconds() // 60)
        if 0 <= age < 60:
            per_minute[59 - age] += 1
        if outcome == DialOutcome.HUMAN and not abandoned:
            conversations += 1
    return json_out(
        CampaignActivityOut(
            at=now,
            dials_per_minute=per_minute,
            dials_last_hour=sum(per_minute),
            conversations_last_hour=conversations,
            abandonment_24h=windows["24h"],
            calls_in_flight=in_flight,
            abandonment_30d=windows["30d"],
            agents=agents,
        )
    )
