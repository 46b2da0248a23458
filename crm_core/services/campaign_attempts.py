"""What happens to a campaign number after it is dialled: the attempt is recorded, its outcome
applies the campaign's retry rules, live answers are counted for the abandonment window, and the
agent's disposition ends, recycles or reschedules the number.

Retry rules are per outcome (busy, no answer, machine, failed, and ``human`` for an answered call
whose disposition is not final): the number is due again ``delay_seconds`` later, the next day
once ``max_per_day`` dials were made that (UTC) day, and exhausted after ``max_total`` dials. The
maxima count every dial of the number. An outcome without a rule is not retried.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import UnitOfWork
from crm_core.errors import InvalidInput, InvalidTransition, NotFound
from crm_core.models import (
    Campaign,
    CampaignAnswerCount,
    CampaignAttempt,
    CampaignContact,
    CampaignDisposition,
    CampaignRetryRule,
    ContactState,
    DialOutcome,
    DncSource,
)
from crm_core.rules.abandonment import WindowCounts, redial_allowed_at
from crm_core.rules.regulatory_profile import RegulatoryProfile
from crm_core.services import do_not_call
from crm_core.services.campaigns import profile_of
from crm_core.sql import dialect_name, insert_module


async def start_attempt(
    session: AsyncSession,
    contact: CampaignContact,
    now: datetime,
    *,
    call_sid: str | None = None,
    agent_id: int | None = None,
) -> CampaignAttempt:
    """Record a dial of a claimed number (counted against the retry maxima)."""
    if contact.state is not ContactState.IN_FLIGHT:
        raise InvalidTransition(f"number {contact.e164} is not claimed for dialling")
    today = now.astimezone(UTC).date()
    if contact.attempts_day != today:
        contact.attempts_day, contact.attempts_today = today, 0
    contact.attempts += 1
    contact.attempts_today += 1
    attempt = CampaignAttempt(
        campaign_id=contact.campaign_id,
        contact_id=contact.id,
        call_sid=call_sid,
        started_at=now,
        agent_id=agent_id,
        talk_seconds=0,
        abandoned=False,
        amd_false_positive=False,
        cost=Decimal(0),
    )
    session.add(attempt)
    await session.flush()
    return attempt


async def _rule(session: AsyncSession, campaign_id: int, outcome: DialOutcome) -> CampaignRetryRule | None:
    found: CampaignRetryRule | None = await session.scalar(
        select(CampaignRetryRule).where(
            CampaignRetryRule.campaign_id == campaign_id, CampaignRetryRule.outcome == outcome
        )
    )
    return found


def apply_retry(contact: CampaignContact, rule: CampaignRetryRule | None, now: datetime) -> None:
    """Recycle ``contact`` by ``rule`` (pending and due later) or exhaust it."""
    contact.claimed_at = None
    if rule is None or contact.attempts >= rule.max_total:
        contact.state = ContactState.EXHAUSTED
        return
    due = now + timedelta(seconds=rule.delay_seconds)
    if contact.attempts_today >= rule.max_per_day:
        tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)
        due = max(due, tomorrow)
    contact.state = ContactState.PENDING
    contact.next_attempt_at = due  # a redial lockout is held apart: a reserved agent lifts it


async def _count_answer(session: AsyncSession, campaign_id: int, at: datetime, column: str) -> None:
    """Add one live answer to the campaign's minute bucket (insert or add, race-free)."""
    minute = at.astimezone(UTC).replace(second=0, microsecond=0)
    table = CampaignAnswerCount.__table__
    assert isinstance(table, Table)
    values = {
        "campaign_id": campaign_id,
        "minute": minute,
        "connected": 0,
        "abandoned": 0,
        "amd_false_positives": 0,
    }
    values[column] = 1
    stmt = insert_module(dialect_name(session)).insert(table).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["campaign_id", "minute"], set_={column: table.c[column] + 1}
    )
    await session.execute(stmt)


async def window_counts(
    session: AsyncSession, campaign_id: int, now: datetime, profile: RegulatoryProfile
) -> WindowCounts:
    """The campaign's live answers in the profile's abandonment window ending at ``now``, from the
    persisted minute counts (so they survive restarts)."""
    start = now - profile.abandonment_window
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(CampaignAnswerCount.connected), 0),
                func.coalesce(func.sum(CampaignAnswerCount.abandoned), 0),
                func.coalesce(func.sum(CampaignAnswerCount.amd_false_positives), 0),
            ).where(
                CampaignAnswerCount.campaign_id == campaign_id,
                CampaignAnswerCount.minute > start,
                CampaignAnswerCount.minute <= now,
            )
        )
    ).one()
    return WindowCounts(int(row[0]), int(row[1]), int(row[2]))


async def _attempt(
    session: AsyncSession, attempt_id: int
) -> tuple[CampaignAttempt, CampaignContact, Campaign]:
    attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
    if attempt is None:
        raise NotFound(f"attempt {attempt_id} not found")
    contact = await session.get(CampaignContact, attempt.contact_id, with_for_update=True)
    campaign = await session.get(Campaign, attempt.campaign_id)
    assert contact is not None and campaign is not None
    return attempt, contact, campaign


async def record_attempt_outcome(
    session: AsyncSession,
    attempt_id: int,
    outcome: DialOutcome,
    now: datetime,
    *,
    answered_at: datetime | None = None,
    answered_by: str | None = None,
    abandoned: bool = False,
    amd_false_positive: bool = False,
    talk_seconds: int = 0,
) -> CampaignAttempt:
    """How a dial ended. A person joined to an agent waits for the agent's disposition; every
    other outcome applies the retry rules. A live answer (a person, or one taken for a machine:
    ``amd_false_positive``) is counted for the abandonment window; an abandoned one starts the
    profile's redial lockout. Recording the same attempt twice changes nothing."""
    attempt, contact, campaign = await _attempt(session, attempt_id)
    if attempt.outcome is not None:
        return attempt
    profile = profile_of(campaign)
    attempt.outcome, attempt.answered_at, attempt.answered_by = outcome, answered_at, answered_by
    attempt.ended_at = None if outcome is DialOutcome.HUMAN and not abandoned else now
    attempt.abandoned, attempt.amd_false_positive = abandoned, amd_false_positive
    attempt.talk_seconds = talk_seconds
    attempt.cost = _cost(campaign, talk_seconds)
    contact.last_outcome = outcome
    if outcome is DialOutcome.HUMAN or amd_false_positive:
        column = "amd_false_positives" if amd_false_positive else "abandoned" if abandoned else "connected"
        await _count_answer(session, campaign.id, answered_at or now, column)
    if abandoned or amd_false_positive:
        contact.last_abandoned_at = answered_at or now
        contact.locked_until = redial_allowed_at(contact.last_abandoned_at, profile, agent_reserved=False)
    if contact.callback_at is not None and contact.callback_at <= now:
        contact.callback_at, contact.callback_agent_id = None, None
    if outcome is DialOutcome.HUMAN and not abandoned:
        await session.flush()
        return attempt  # the agent's disposition decides
    retry_as = DialOutcome.NO_ANSWER if outcome is DialOutcome.HUMAN else outcome
    apply_retry(contact, await _rule(session, campaign.id, retry_as), now)
    await session.flush()
    return attempt


def _cost(campaign: Campaign, talk_seconds: int) -> Decimal:
    """Talk time billed by the started minute at the campaign's price."""
    minutes = -(-talk_seconds // 60)
    return Decimal(minutes) * campaign.price_per_minute


async def record_disposition(
    uow: UnitOfWork,
    attempt_id: int,
    code: str,
    now: datetime,
    *,
    agent_id: int | None = None,
    notes: str | None = None,
    talk_seconds: int | None = None,
    callback_at: datetime | None = None,
    callback_agent_id: int | None = None,
) -> CampaignContact:
    """The agent's disposition of an answered call: final ends the number, call-back schedules it
    (for ``callback_agent_id``, else anyone) at ``callback_at``, do-not-call puts it on the
    company's list, converted counts its value; any other recycles it by the ``human`` rule."""
    session = uow.session
    attempt, contact, campaign = await _attempt(session, attempt_id)
    disposition = await session.scalar(
        select(CampaignDisposition).where(
            CampaignDisposition.campaign_id == campaign.id, CampaignDisposition.code == code
        )
    )
    if disposition is None:
        raise InvalidInput(f"the campaign has no disposition {code!r}", "code")
    if disposition.callback and (callback_at is None or callback_at <= now):
        raise InvalidInput("a call back needs a time in the future", "callback_at")
    attempt.disposition, attempt.notes = disposition.code, notes
    attempt.agent_id = agent_id or attempt.agent_id
    if talk_seconds is not None:
        attempt.talk_seconds, attempt.cost = talk_seconds, _cost(campaign, talk_seconds)
    attempt.ended_at = attempt.ended_at or now
    contact.last_disposition = disposition.code
    contact.claimed_at = None
    if disposition.converted:
        contact.converted_value = disposition.value
    if disposition.do_not_call:
        await do_not_call.add(uow, contact.e164, DncSource.DISPOSITION, now, actor_id=agent_id)
        contact.state = ContactState.DNC
    elif disposition.final:
        contact.state = ContactState.DONE
    elif disposition.callback:
        assert callback_at is not None
        contact.state, contact.next_attempt_at = ContactState.PENDING, callback_at
        contact.callback_at, contact.callback_agent_id = callback_at, callback_agent_id
    else:
        apply_retry(contact, await _rule(session, campaign.id, DialOutcome.HUMAN), now)
    await session.flush()
    return contact
