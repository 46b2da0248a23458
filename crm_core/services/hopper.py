"""The hopper: a running campaign's next dialable numbers, chosen in the database at the moment of
dialling, and claimed so that two instances never take the same number.

A number is chosen when it is pending, its next attempt is due, no redial lockout holds it (unless
an agent is reserved for the call), it is on neither do-not-call list, its customer consents to
calls (when the profile asks for consent: the copy on the row, refreshed when the consent
changes), and every zone it may ring in is inside the calling window now. The window is applied
through the cached ``zone_key`` of each number: the zone sets inside the window are worked out in
Python (DST included, by zoneinfo) and handed to the query as a list, which the hopper index
``(campaign_id, state, zone_key, next_attempt_at, id)`` serves. Callbacks scheduled by agents come
first, at their time.

Claiming locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (the update is the
lock on SQLite) and then asks :func:`crm_core.services.dialable.dialable` about each number, so
the rules live in one place; a number it refuses goes back with the reason applied (the next
callable moment, the lockout's end, the do-not-call state).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    exists,
    inspect,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import (
    Campaign,
    CampaignAttempt,
    CampaignContact,
    CampaignStatus,
    ContactState,
    Customer,
    DoNotCall,
)
from crm_core.outbox.claim import claim
from crm_core.rules.calling_window import next_callable
from crm_core.rules.regulatory_profile import RegulatoryProfile
from crm_core.services.call_lists import zone_key
from crm_core.services.campaigns import profile_of
from crm_core.services.dialable import Dialability, RefusalCode, dialable

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
    campaign_id: int,
    now: datetime | BindParameter[datetime],
    keys: Sequence[str] | None,
    *,
    requires_consent: bool,
    agent_reserved: bool,
) -> list[ColumnElement[bool]]:
    """The WHERE clauses choosing the campaign's numbers dialable at ``now`` (in the zone sets
    ``keys``; None: the caller picks the zone set)."""
    where: list[ColumnElement[bool]] = [
        CampaignContact.campaign_id == campaign_id,
        CampaignContact.state == ContactState.PENDING,
        CampaignContact.next_attempt_at <= now,
        ~exists().where(DoNotCall.e164 == CampaignContact.e164),
    ]
    if keys is not None:
        where.append(CampaignContact.zone_key.in_(keys))
    if not agent_reserved:
        where.append(or_(CampaignContact.locked_until.is_(None), CampaignContact.locked_until <= now))
    if requires_consent:
        # The copy on the row (no customer read per candidate); the dial-time check reads the customer.
        where.append(CampaignContact.voice_consent.is_(true()))
    return where


NOW = bindparam("hopper_now", type_=CampaignContact.next_attempt_at.type)


@functools.lru_cache(maxsize=512)
def _choice(
    campaign_id: int, keys: tuple[str, ...], limit: int, *, requires_consent: bool, agent_reserved: bool
) -> tuple[Select[tuple[CampaignContact]], Select[tuple[int]]]:
    """The statements choosing up to ``limit`` dialable numbers in dialling order (the contacts;
    their ids), with ``now`` left as the ``hopper_now`` parameter. Built once per campaign, zone
    sets and limit: the hopper runs every second, and building the statement costs more than
    running it."""
    where = dialable_filter(
        campaign_id, NOW, None, requires_consent=requires_consent, agent_reserved=agent_reserved
    )
    contact = CampaignContact
    # Callbacks due come first, in their order (few: the callbacks index serves them). Then the
    # numbers due longest ago: one index range per zone set (``campaign_id, state, zone_key,
    # next_attempt_at``), each stopping after ``limit`` rows, merged; one range over several
    # zone sets could not return its rows in time order.
    parts = [
        select(contact.id, literal(0).label("priority"), contact.callback_at.label("due"))
        .where(
            *where, contact.zone_key.in_(keys), contact.callback_at.is_not(None), contact.callback_at <= NOW
        )
        .order_by(contact.callback_at)  # the callbacks index's order: its scan stops at the limit
        .limit(limit)
        .subquery()
    ]
    parts += [
        select(contact.id, literal(1).label("priority"), contact.next_attempt_at.label("due"))
        .where(*where, contact.zone_key == key, contact.callback_at.is_(None))
        .order_by(contact.next_attempt_at, contact.id)
        .limit(limit)
        .subquery()
        for key in keys
    ]
    merged = union_all(*(select(p.c.id, p.c.priority, p.c.due) for p in parts)).subquery()
    chosen = (
        select(merged.c.id, merged.c.priority, merged.c.due)
        .order_by(merged.c.priority, merged.c.due, merged.c.id)
        .limit(limit)
        .subquery("chosen")
    )
    order = (chosen.c.priority, chosen.c.due, chosen.c.id)
    contacts = select(CampaignContact).join(chosen, chosen.c.id == CampaignContact.id).order_by(*order)
    return contacts, select(chosen.c.id).order_by(*order)


def _campaign_id(campaign: Campaign | int) -> int:
    """The id, read without loading anything (the object may be expired or from another session)."""
    if isinstance(campaign, int):
        return campaign
    identity = inspect(campaign).identity
    return int(identity[0]) if identity else campaign.id


@dataclass(frozen=True, slots=True)
class _Round:
    """What one hopper round works with: the campaign as stored now and its zone sets open now."""

    campaign: Campaign
    profile: RegulatoryProfile
    keys: tuple[str, ...]

    def statements(
        self, limit: int, agent_reserved: bool
    ) -> tuple[Select[tuple[CampaignContact]], Select[tuple[int]]]:
        return _choice(
            self.campaign.id,
            self.keys,
            limit,
            requires_consent=self.profile.requires_voice_consent,
            agent_reserved=agent_reserved,
        )


async def _round(session: AsyncSession, campaign: Campaign | int, now: datetime, limit: int) -> _Round | None:
    """None when the campaign dials nothing now (not running, outside its schedule, no zone open)."""
    # The campaign as stored now: a pause, a schedule change or a newly loaded zone counts at once.
    current = await session.get(Campaign, _campaign_id(campaign), populate_existing=True)
    if current is None or limit <= 0:
        return None
    if current.status is not CampaignStatus.RUNNING or not in_schedule(current, now):
        return None
    profile = profile_of(current)
    keys = tuple(callable_zone_keys(current.zone_keys, now, profile))
    return _Round(current, profile, keys) if keys else None


async def next_dialable(
    session: AsyncSession,
    campaign: Campaign | int,
    now: datetime,
    limit: int,
    *,
    agent_reserved: bool = False,
) -> list[CampaignContact]:
    """The next ``limit`` dialable numbers of ``campaign`` at ``now``, callbacks first; nothing
    is claimed (see :func:`claim_next`). Two round trips: the campaign, then the numbers."""
    found = await _round(session, campaign, now, limit)
    if found is None:
        return []
    contacts, _ = found.statements(limit, agent_reserved)
    return list(await session.scalars(contacts, {"hopper_now": now}))


async def _claim(
    session: AsyncSession, campaign: Campaign | int, now: datetime, limit: int, *, agent_reserved: bool
) -> tuple[list[CampaignContact], RegulatoryProfile | None]:
    found = await _round(session, campaign, now, limit)
    if found is None:
        return [], None
    _, choose_ids = found.statements(limit, agent_reserved)
    ids = list(await session.scalars(choose_ids, {"hopper_now": now}))
    if not ids:
        return [], found.profile
    # Claim what was chosen, checking every rule again under the row locks (a compare-and-set):
    # rows another instance holds are skipped, rows it took in between no longer match.
    where = dialable_filter(
        found.campaign.id,
        now,
        found.keys,
        requires_consent=found.profile.requires_voice_consent,
        agent_reserved=agent_reserved,
    )
    values = {"state": ContactState.IN_FLIGHT, "claimed_at": now}
    won = await claim(
        session, CampaignContact, where=[CampaignContact.id.in_(ids), *where], values=values, limit=len(ids)
    )
    if not won:
        return [], found.profile
    taken = select(CampaignContact).where(CampaignContact.id.in_(won))
    rows = {c.id: c for c in await session.scalars(taken.execution_options(populate_existing=True))}
    return [rows[i] for i in ids if i in rows], found.profile


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
    session: AsyncSession,
    campaign: Campaign | int,
    now: datetime,
    limit: int,
    *,
    agent_reserved: bool = False,
) -> HopperClaim:
    """Claim up to ``limit`` numbers to dial now, callbacks first, each checked at dial time. The
    caller commits (the claim holds once committed); a claimed number is in flight until
    :func:`crm_core.services.campaign_attempts.record_attempt_outcome`."""
    contacts, profile = await _claim(session, campaign, now, limit, agent_reserved=agent_reserved)
    if profile is None:
        return HopperClaim([], [])
    customers = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.id.in_({c.customer_id for c in contacts}))
        )
    }
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


async def release_stale_claims(
    session: AsyncSession,
    campaign: Campaign | int,
    now: datetime,
    older_than: timedelta = timedelta(minutes=5),
) -> int:
    """Put back numbers claimed more than ``older_than`` ago and never dialled (the instance that
    claimed them died before placing the call); how many. A number whose dial was recorded stays
    in flight until its outcome is."""
    since = now - older_than
    dialled = exists().where(
        CampaignAttempt.contact_id == CampaignContact.id,
        CampaignAttempt.started_at >= CampaignContact.claimed_at,
    )
    released = await session.execute(
        update(CampaignContact)
        .where(
            CampaignContact.campaign_id == _campaign_id(campaign),
            CampaignContact.state == ContactState.IN_FLIGHT,
            CampaignContact.claimed_at < since,
            ~dialled,
        )
        .values(state=ContactState.PENDING, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(released.rowcount)  # type: ignore[attr-defined]
