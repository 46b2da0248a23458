"""The hopper: a running campaign's next dialable numbers, chosen in the database at the moment of
dialling, and claimed so that two instances never take the same number.

A number is chosen when it is pending, its next attempt is due, no redial lockout holds it (unless
an agent is reserved for the call), it is on neither do-not-call list, its customer consents to
calls (when the profile asks for consent), and every zone it may ring in is inside the calling
window now. The window is applied through the cached ``zone_key`` of each number: the zone sets
inside the window are worked out in Python (DST included, by zoneinfo) and handed to the query as
a list, which the hopper index ``(campaign_id, state, zone_key, next_attempt_at, id)`` serves.
Callbacks scheduled by agents come first, at their time.

Claiming locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (the update is the
lock on SQLite) and then asks :func:`crm_core.services.dialable.dialable` about each number, so
the rules live in one place; a number it refuses goes back with the reason applied (the next
callable moment, the lockout's end, the do-not-call state).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Campaign, CampaignContact, CampaignStatus, ContactState, Customer, DoNotCall
from crm_core.outbox.claim import claim
from crm_core.rules.calling_window import next_callable
from crm_core.rules.regulatory_profile import RegulatoryProfile
from crm_core.services.call_lists import zone_key
from crm_core.services.campaigns import profile_of
from crm_core.services.dialable import Dialability, RefusalCode, dialable
from crm_core.types import Channel

RECHECK_LATER = timedelta(hours=1)
"""When a refused number is looked at again if the refusal says no better time."""


def callable_zone_keys(keys: Iterable[str], now: datetime, profile: RegulatoryProfile) -> list[str]:
    """The zone keys whose every zone is inside the calling window at ``now``."""
    return sorted(k for k in keys if k and next_callable(k.split(" "), now, profile) == now)


def in_schedule(campaign: Campaign, now: datetime) -> bool:
    """Whether ``now`` is within the campaign's dates and daily hours (its schedule's zone)."""
    local = now.astimezone(ZoneInfo(campaign.schedule_timezone))
    if campaign.starts_on is not None and local.date() < campaign.starts_on:
        return False
    if campaign.ends_on is not None and local.date() > campaign.ends_on:
        return False
    if campaign.daily_start is not None and campaign.daily_end is not None:
        return campaign.daily_start <= local.time() < campaign.daily_end
    return True


def dialable_filter(
    campaign: Campaign,
    now: datetime,
    profile: RegulatoryProfile,
    keys: Sequence[str],
    *,
    agent_reserved: bool,
) -> list[ColumnElement[bool]]:
    """The WHERE clauses choosing the campaign's numbers dialable at ``now``."""
    where: list[ColumnElement[bool]] = [
        CampaignContact.campaign_id == campaign.id,
        CampaignContact.state == ContactState.PENDING,
        CampaignContact.zone_key.in_(keys),
        CampaignContact.next_attempt_at <= now,
        ~exists().where(DoNotCall.e164 == CampaignContact.e164),
    ]
    if not agent_reserved:
        where.append(or_(CampaignContact.locked_until.is_(None), CampaignContact.locked_until <= now))
    if profile.requires_voice_consent:
        where.append(
            exists().where(
                Customer.id == CampaignContact.customer_id,
                Customer.consent[Channel.VOICE.value].as_boolean() == true(),
            )
        )
    return where


async def _pick(
    session: AsyncSession,
    campaign: Campaign,
    now: datetime,
    limit: int,
    *,
    agent_reserved: bool,
    lock: bool,
) -> list[int]:
    """Ids of up to ``limit`` dialable numbers, callbacks first; with ``lock``, claimed (state
    in flight)."""
    # The campaign as stored now: a pause, a schedule change or a newly loaded zone counts at once.
    current = await session.get(Campaign, campaign.id, populate_existing=True)
    if current is None or limit <= 0:
        return []
    campaign = current
    if campaign.status is not CampaignStatus.RUNNING or not in_schedule(campaign, now):
        return []
    profile = profile_of(campaign)
    keys = callable_zone_keys(campaign.zone_keys, now, profile)
    if not keys:
        return []
    where = dialable_filter(campaign, now, profile, keys, agent_reserved=agent_reserved)
    kinds = (
        ([CampaignContact.callback_at.is_not(None)], [CampaignContact.callback_at, CampaignContact.id]),
        ([CampaignContact.callback_at.is_(None)], [CampaignContact.next_attempt_at, CampaignContact.id]),
    )
    ids: list[int] = []
    for extra, order in kinds:
        wanted = limit - len(ids)
        if wanted <= 0:
            break
        if lock:
            values = {"state": ContactState.IN_FLIGHT, "claimed_at": now}
            ids += await claim(
                session, CampaignContact, where=[*where, *extra], values=values, order_by=order, limit=wanted
            )
        else:
            stmt = select(CampaignContact.id).where(*where, *extra).order_by(*order).limit(wanted)
            ids += list(await session.scalars(stmt))
    return ids


async def next_dialable(
    session: AsyncSession, campaign: Campaign, now: datetime, limit: int, *, agent_reserved: bool = False
) -> list[CampaignContact]:
    """The next ``limit`` dialable numbers of ``campaign`` at ``now``, callbacks first; nothing
    is claimed (see :func:`claim_next`)."""
    ids = await _pick(session, campaign, now, limit, agent_reserved=agent_reserved, lock=False)
    return await _contacts(session, ids)


async def _contacts(session: AsyncSession, ids: Sequence[int]) -> list[CampaignContact]:
    if not ids:
        return []
    rows = {
        c.id: c for c in await session.scalars(select(CampaignContact).where(CampaignContact.id.in_(ids)))
    }
    return [rows[i] for i in ids if i in rows]


@dataclass(frozen=True, slots=True)
class ClaimedContact:
    """A number claimed for dialling: in flight until its attempt's outcome is recorded."""

    contact: CampaignContact
    warnings: list[str] = field(default_factory=list)

    @property
    def callback_agent_id(self) -> int | None:
        """The agent a scheduled callback is for (None: anyone)."""
        return self.contact.callback_agent_id


@dataclass(frozen=True, slots=True)
class HopperClaim:
    claimed: list[ClaimedContact]
    refused: list[Dialability]
    """Numbers the dial-time check refused, each put back with its reason applied."""


def _put_back(
    contact: CampaignContact, verdict: Dialability, customer: Customer | None, now: datetime
) -> None:
    """Return a refused number to the list with its refusal applied: off the list for good when
    on a do-not-call list or invalid, else due again when every refusal may have lifted."""
    codes = {r.code for r in verdict.reasons}
    contact.claimed_at = None
    if codes & {RefusalCode.INTERNAL_DNC, RefusalCode.NATIONAL_DNC}:
        contact.state = ContactState.DNC
        return
    if RefusalCode.INVALID_NUMBER in codes:
        contact.state = ContactState.EXHAUSTED
        return
    contact.state = ContactState.PENDING
    contact.zone_key = zone_key(contact.e164, customer.timezone if customer else None)
    due: list[datetime] = []
    for reason in verdict.reasons:
        if reason.code is RefusalCode.OUTSIDE_CALLING_HOURS and verdict.next_callable is not None:
            due.append(verdict.next_callable)
        elif reason.code is RefusalCode.ABANDONED_RECENTLY:
            contact.locked_until = datetime.fromisoformat(reason.details["until"])
            due.append(contact.locked_until)
        else:
            due.append(now + RECHECK_LATER)
    contact.next_attempt_at = max(due, default=now + RECHECK_LATER)


async def claim_next(
    session: AsyncSession, campaign: Campaign, now: datetime, limit: int, *, agent_reserved: bool = False
) -> HopperClaim:
    """Claim up to ``limit`` numbers to dial now, callbacks first, each checked at dial time. The
    caller commits (the claim holds once committed); a claimed number is in flight until
    :func:`crm_core.services.campaign_attempts.record_attempt_outcome`."""
    ids = await _pick(session, campaign, now, limit, agent_reserved=agent_reserved, lock=True)
    contacts = await _contacts(session, ids)
    customers = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.id.in_({c.customer_id for c in contacts}))
        )
    }
    profile = profile_of(campaign)
    claimed: list[ClaimedContact] = []
    refused: list[Dialability] = []
    for contact in contacts:
        customer = customers.get(contact.customer_id)
        verdict = await dialable(
            session,
            contact.e164,
            profile,
            now,
            customer=customer,
            last_abandoned_at=contact.last_abandoned_at,
            agent_reserved=agent_reserved,
        )
        if verdict.dialable:
            claimed.append(ClaimedContact(contact, verdict.warnings))
        else:
            _put_back(contact, verdict, customer, now)
            refused.append(verdict)
    await session.flush()
    return HopperClaim(claimed, refused)
