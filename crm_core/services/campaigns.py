"""Campaigns: creating and editing them (validated), their members, dispositions and retry rules,
who may see them, their status, and the regulatory profile they dial under.

Visibility follows customers and tickets: an agent sees the campaigns they work (named, or
through their team), a supervisor their team's campaigns and the ones their team works, an
admin all. Creating and editing is for supervisors (their own team's campaigns) and admins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, delete, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from crm_core.models import (
    Agent,
    Campaign,
    CampaignDisposition,
    CampaignMember,
    CampaignMode,
    CampaignRetryRule,
    CampaignStatus,
    DialOutcome,
    MachineAction,
    Role,
    Team,
)
from crm_core.rules.regulatory_profile import PROFILES, RegulatoryProfile
from crm_core.services import do_not_call
from crm_core.services.audit import audit
from crm_core.services.campaign_scripts import check_script
from crm_core.visibility import Viewer

EDITABLE = (
    "name",
    "team_id",
    "mode",
    "caller_id",
    "script_template",
    "regulatory_profile",
    "abandonment_target",
    "starts_on",
    "ends_on",
    "daily_start",
    "daily_end",
    "schedule_timezone",
    "machine_action",
    "machine_message",
    "price_per_minute",
)
DEFAULTS: dict[str, Any] = {
    "mode": CampaignMode.PROGRESSIVE,
    "script_template": "",
    "regulatory_profile": "us",
    "abandonment_target": Decimal("0.03"),
    "schedule_timezone": "UTC",
    "status": CampaignStatus.DRAFT,
    "machine_action": MachineAction.HANGUP,
    "price_per_minute": Decimal(0),
}
RETRYABLE = (
    DialOutcome.HUMAN,
    DialOutcome.BUSY,
    DialOutcome.NO_ANSWER,
    DialOutcome.MACHINE,
    DialOutcome.FAILED,
)
TRANSITIONS: dict[CampaignStatus, tuple[CampaignStatus, ...]] = {
    CampaignStatus.DRAFT: (CampaignStatus.RUNNING, CampaignStatus.STOPPED),
    CampaignStatus.RUNNING: (CampaignStatus.PAUSED, CampaignStatus.STOPPED),
    CampaignStatus.PAUSED: (CampaignStatus.RUNNING, CampaignStatus.STOPPED),
    CampaignStatus.STOPPED: (),
}


def campaign_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause over ``Campaign`` selecting what ``viewer`` may see."""
    if viewer.is_admin:
        return true()
    worked_by_team = (
        CampaignMember.team_id == viewer.team_id
        if viewer.team_id is not None
        else CampaignMember.id.is_(None)
    )
    if viewer.role is Role.SUPERVISOR and viewer.team_id is not None:
        team_agents = select(Agent.id).where(Agent.team_id == viewer.team_id)
        members = select(CampaignMember.campaign_id).where(
            or_(worked_by_team, CampaignMember.agent_id.in_(team_agents))
        )
        return or_(Campaign.team_id == viewer.team_id, Campaign.id.in_(members))
    members = select(CampaignMember.campaign_id).where(
        or_(CampaignMember.agent_id == viewer.agent_id, worked_by_team)
    )
    return Campaign.id.in_(members)


def may_edit(viewer: Viewer, campaign: Campaign) -> bool:
    if viewer.is_admin:
        return True
    return (
        viewer.role is Role.SUPERVISOR and viewer.team_id is not None and campaign.team_id == viewer.team_id
    )


async def get_visible(session: AsyncSession, viewer: Viewer, campaign_id: int) -> Campaign:
    found = await session.scalar(select(Campaign).where(Campaign.id == campaign_id, campaign_filter(viewer)))
    if found is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return found


async def get_editable(session: AsyncSession, viewer: Viewer, campaign_id: int) -> Campaign:
    campaign = await get_visible(session, viewer, campaign_id)
    if not may_edit(viewer, campaign):
        raise Forbidden("only a supervisor of the campaign's team or an admin may change it")
    return campaign


async def list_campaigns(session: AsyncSession, viewer: Viewer) -> list[Campaign]:
    return list(await session.scalars(select(Campaign).where(campaign_filter(viewer)).order_by(Campaign.id)))


def profile_of(campaign: Campaign) -> RegulatoryProfile:
    """The campaign's regulatory profile with its abandonment target as the limit."""
    return dataclasses.replace(
        PROFILES[campaign.regulatory_profile], abandonment_limit=float(campaign.abandonment_target)
    )


def _decimal(value: Any, field: str, *, minimum: Decimal = Decimal(0)) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"{field} must be a number", field) from exc
    if not number.is_finite() or number < minimum:
        raise InvalidInput(f"{field} must be at least {minimum}", field)
    return number


def _date(value: Any, field: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{field} must be a date (YYYY-MM-DD)", field) from exc


def _time(value: Any, field: str) -> time | None:
    if value is None or isinstance(value, time):
        return value
    try:
        return time.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{field} must be a time of day (HH:MM)", field) from exc


def _clean(fields: Mapping[str, Any], owned_numbers: Collection[str]) -> dict[str, Any]:
    """Validated, typed values for the campaign fields given."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"unknown campaign fields: {', '.join(sorted(unknown))}", sorted(unknown)[0])
    out: dict[str, Any] = dict(fields)
    if "name" in out:
        name = str(out["name"] or "").strip()
        if not name or len(name) > 200:
            raise InvalidInput("a campaign needs a name of 1 to 200 characters", "name")
        out["name"] = name
    if "mode" in out:
        out["mode"] = _enum(CampaignMode, out["mode"], "mode")
    if "machine_action" in out:
        out["machine_action"] = _enum(MachineAction, out["machine_action"], "machine_action")
    if "script_template" in out:
        out["script_template"] = check_script(str(out["script_template"] or ""))
    if "caller_id" in out:
        e164 = do_not_call.normalise_e164(str(out["caller_id"] or ""), "caller_id")
        if e164 not in owned_numbers:
            raise InvalidInput(f"{e164} is not one of the account's numbers", "caller_id")
        out["caller_id"] = e164
    if "regulatory_profile" in out and out["regulatory_profile"] not in PROFILES:
        raise InvalidInput(
            f"the regulatory profile must be one of {', '.join(PROFILES)}", "regulatory_profile"
        )
    if "abandonment_target" in out:
        out["abandonment_target"] = _decimal(out["abandonment_target"], "abandonment_target")
    for key in ("starts_on", "ends_on"):
        if key in out:
            out[key] = _date(out[key], key)
    for key in ("daily_start", "daily_end"):
        if key in out:
            out[key] = _time(out[key], key)
    if "schedule_timezone" in out:
        try:
            ZoneInfo(str(out["schedule_timezone"]))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput("the schedule's time zone is not a known zone", "schedule_timezone") from exc
    if "price_per_minute" in out:
        out["price_per_minute"] = _decimal(out["price_per_minute"], "price_per_minute")
    return out


def _check_whole(campaign: Campaign) -> None:
    """Rules between fields, checked on the campaign as it will be stored."""
    limit = PROFILES[campaign.regulatory_profile].abandonment_limit
    if campaign.abandonment_target > Decimal(str(limit)):
        raise InvalidInput(
            f"the abandonment target cannot exceed the {campaign.regulatory_profile} limit of {limit:.0%}",
            "abandonment_target",
        )
    if campaign.starts_on and campaign.ends_on and campaign.ends_on < campaign.starts_on:
        raise InvalidInput("the campaign cannot end before it starts", "ends_on")
    if (campaign.daily_start is None) != (campaign.daily_end is None):
        raise InvalidInput("daily hours need both a start and an end", "daily_end")
    if campaign.daily_start and campaign.daily_end and campaign.daily_end <= campaign.daily_start:
        raise InvalidInput("the daily hours must end after they start", "daily_end")
    if campaign.machine_action is MachineAction.MESSAGE and not (campaign.machine_message or "").strip():
        raise InvalidInput("leaving a message on machines needs the message text", "machine_message")


def _enum(kind: Any, value: Any, field: str) -> Any:
    try:
        return kind(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be one of {', '.join(m.value for m in kind)}", field) from exc


async def _check_team(session: AsyncSession, viewer: Viewer, team_id: int | None) -> None:
    if team_id is not None and await session.get(Team, team_id) is None:
        raise InvalidInput(f"team {team_id} does not exist", "team_id")
    if not viewer.is_admin and team_id != viewer.team_id:
        raise Forbidden("a supervisor runs campaigns of their own team only")


async def create_campaign(
    uow: UnitOfWork, viewer: Viewer, owned_numbers: Collection[str], **fields: Any
) -> Campaign:
    """A new draft campaign. ``owned_numbers``: the account's numbers (E.164), one of which must be
    the caller ID."""
    if not viewer.is_supervisor:
        raise Forbidden("only supervisors and admins create campaigns")
    if "caller_id" not in fields or "name" not in fields:
        raise InvalidInput(
            "a campaign needs a name and a caller ID", "name" if "name" not in fields else "caller_id"
        )
    values = _clean(fields, owned_numbers)
    values.setdefault("team_id", viewer.team_id)
    await _check_team(uow.session, viewer, values["team_id"])
    campaign = Campaign(**{**DEFAULTS, **values}, zone_keys=[], created_by_id=viewer.agent_id)
    _check_whole(campaign)
    uow.session.add(campaign)
    await uow.session.flush()
    audit(uow.session, "campaign", campaign.id, "created", viewer.agent_id, {"name": campaign.name})
    return campaign


async def update_campaign(
    uow: UnitOfWork, viewer: Viewer, campaign_id: int, owned_numbers: Collection[str], **fields: Any
) -> Campaign:
    campaign = await get_editable(uow.session, viewer, campaign_id)
    if campaign.status is CampaignStatus.STOPPED:
        raise InvalidTransition("a stopped campaign cannot be changed")
    values = _clean(fields, owned_numbers)
    if "team_id" in values:
        await _check_team(uow.session, viewer, values["team_id"])
    changes = {k: [str(getattr(campaign, k)), str(v)] for k, v in values.items() if getattr(campaign, k) != v}
    for key, value in values.items():
        setattr(campaign, key, value)
    _check_whole(campaign)
    if changes:
        audit(uow.session, "campaign", campaign.id, "updated", viewer.agent_id, changes)
    await uow.session.flush()
    return campaign


async def set_status(
    uow: UnitOfWork, viewer: Viewer, campaign_id: int, status: CampaignStatus, now: datetime
) -> Campaign:
    """Start, pause or stop: only the status changes here; the dialer acts on it."""
    campaign = await get_editable(uow.session, viewer, campaign_id)
    if status is campaign.status:
        return campaign
    if status not in TRANSITIONS[campaign.status]:
        raise InvalidTransition(f"a {campaign.status.value} campaign cannot become {status.value}")
    if status is CampaignStatus.RUNNING and campaign.ends_on is not None and now.date() > campaign.ends_on:
        raise InvalidTransition("the campaign's end date has passed")
    audit(
        uow.session,
        "campaign",
        campaign.id,
        "status",
        viewer.agent_id,
        {"status": [campaign.status.value, status]},
    )
    campaign.status = status
    await uow.session.flush()
    return campaign


async def set_members(
    uow: UnitOfWork, viewer: Viewer, campaign_id: int, *, agent_ids: Iterable[int], team_ids: Iterable[int]
) -> None:
    """Replace who works the campaign."""
    campaign = await get_editable(uow.session, viewer, campaign_id)
    agents, teams = sorted(set(agent_ids)), sorted(set(team_ids))
    for model, ids, field in ((Agent, agents, "agent_ids"), (Team, teams, "team_ids")):
        found = set(await uow.session.scalars(select(model.id).where(model.id.in_(ids)))) if ids else set()
        if missing := [i for i in ids if i not in found]:
            raise InvalidInput(f"unknown {field[:-4]}s: {missing}", field)
    await uow.session.execute(delete(CampaignMember).where(CampaignMember.campaign_id == campaign.id))
    uow.session.add_all([CampaignMember(campaign_id=campaign.id, agent_id=a) for a in agents])
    uow.session.add_all([CampaignMember(campaign_id=campaign.id, team_id=t) for t in teams])
    audit(
        uow.session, "campaign", campaign.id, "members", viewer.agent_id, {"agents": agents, "teams": teams}
    )
    await uow.session.flush()


async def members(session: AsyncSession, campaign_id: int) -> tuple[list[int], list[int]]:
    rows = list(
        await session.scalars(select(CampaignMember).where(CampaignMember.campaign_id == campaign_id))
    )
    return (
        sorted(r.agent_id for r in rows if r.agent_id is not None),
        sorted(r.team_id for r in rows if r.team_id is not None),
    )


async def set_disposition(
    uow: UnitOfWork,
    viewer: Viewer,
    campaign_id: int,
    code: str,
    *,
    label: str,
    final: bool = False,
    callback: bool = False,
    do_not_call: bool = False,
    converted: bool = False,
    value: Any = 0,
) -> CampaignDisposition:
    """Create or replace the disposition ``code`` of a campaign."""
    campaign = await get_editable(uow.session, viewer, campaign_id)
    code = code.strip()
    if not code or len(code) > 50:
        raise InvalidInput("a disposition code has 1 to 50 characters", "code")
    if not label.strip():
        raise InvalidInput("a disposition needs a label", "label")
    if callback and (final or do_not_call):
        raise InvalidInput("a call-back disposition cannot also end the contact", "callback")
    amount = _decimal(value, "value")
    if amount and not converted:
        raise InvalidInput("only a converted disposition carries a value", "value")
    found = await uow.session.scalar(
        select(CampaignDisposition).where(
            CampaignDisposition.campaign_id == campaign.id, CampaignDisposition.code == code
        )
    )
    disposition = found or CampaignDisposition(campaign_id=campaign.id, code=code)
    disposition.label = label.strip()
    disposition.final, disposition.callback = final or do_not_call, callback
    disposition.do_not_call, disposition.converted, disposition.value = do_not_call, converted, amount
    uow.session.add(disposition)
    await uow.session.flush()
    return disposition


async def dispositions(session: AsyncSession, campaign_id: int) -> list[CampaignDisposition]:
    return list(
        await session.scalars(
            select(CampaignDisposition)
            .where(CampaignDisposition.campaign_id == campaign_id)
            .order_by(CampaignDisposition.code)
        )
    )


async def delete_disposition(uow: UnitOfWork, viewer: Viewer, campaign_id: int, code: str) -> None:
    campaign = await get_editable(uow.session, viewer, campaign_id)
    gone = await uow.session.execute(
        delete(CampaignDisposition).where(
            CampaignDisposition.campaign_id == campaign.id, CampaignDisposition.code == code
        )
    )
    if not gone.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"disposition {code!r} not found")


async def set_retry_rule(
    uow: UnitOfWork,
    viewer: Viewer,
    campaign_id: int,
    outcome: Any,
    *,
    delay_seconds: int,
    max_per_day: int,
    max_total: int,
) -> CampaignRetryRule:
    """Create or replace the retry rule for one outcome (busy, no answer, machine, failed; human:
    an answered call whose disposition neither ends nor reschedules the number)."""
    campaign = await get_editable(uow.session, viewer, campaign_id)
    kind: DialOutcome = _enum(DialOutcome, outcome, "outcome")
    if kind not in RETRYABLE:
        raise InvalidInput("retry rules are for human, busy, no_answer, machine and failed", "outcome")
    for field, number in (
        ("delay_seconds", delay_seconds),
        ("max_per_day", max_per_day),
        ("max_total", max_total),
    ):
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise InvalidInput(f"{field} must be a whole number, 0 or more", field)
    if max_per_day > max_total:
        raise InvalidInput("the daily maximum cannot exceed the total", "max_per_day")
    found = await uow.session.scalar(
        select(CampaignRetryRule).where(
            CampaignRetryRule.campaign_id == campaign.id, CampaignRetryRule.outcome == kind
        )
    )
    rule = found or CampaignRetryRule(campaign_id=campaign.id, outcome=kind)
    rule.delay_seconds, rule.max_per_day, rule.max_total = delay_seconds, max_per_day, max_total
    uow.session.add(rule)
    await uow.session.flush()
    return rule


async def retry_rules(session: AsyncSession, campaign_id: int) -> list[CampaignRetryRule]:
    return list(
        await session.scalars(
            select(CampaignRetryRule)
            .where(CampaignRetryRule.campaign_id == campaign_id)
            .order_by(CampaignRetryRule.outcome)
        )
    )
