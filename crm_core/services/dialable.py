"""Whether a number may be dialled now, and every reason why not.

Every refusal is explainable: the answer lists each rule that refuses the number (not only the
first), with what the dialer, an agent or a supervisor needs to understand it: the zones and the
next callable moment, the do-not-call list and its source, the consent, the redial lockout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import InvalidInput
from crm_core.models import Customer, CustomerPhone
from crm_core.rules.abandonment import redial_allowed_at
from crm_core.rules.calling_window import calling_window
from crm_core.rules.regulatory_profile import RegulatoryProfile
from crm_core.services import do_not_call
from crm_core.types import Channel


class RefusalCode(enum.StrEnum):
    INVALID_NUMBER = "invalid-number"
    OUTSIDE_CALLING_HOURS = "outside-calling-hours"
    UNKNOWN_TIME_ZONE = "unknown-time-zone"
    INTERNAL_DNC = "internal-dnc"
    NATIONAL_DNC = "national-dnc"
    NO_VOICE_CONSENT = "no-voice-consent"
    ABANDONED_RECENTLY = "abandoned-recently"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dialability:
    e164: str
    dialable: bool
    reasons: list[Refusal]
    warnings: list[str] = field(default_factory=list)
    """What does not refuse this call but needs attention (a stale national list)."""
    next_callable: datetime | None = None
    """When refused by the calling window: when it next opens for every zone of the number."""


async def _customer_for(session: AsyncSession, e164: str) -> Customer | None:
    found: Customer | None = await session.scalar(
        select(Customer)
        .join(CustomerPhone, CustomerPhone.customer_id == Customer.id)
        .where(CustomerPhone.e164 == e164)
    )
    return found


def _consent_refusal(customer: Customer | None) -> Refusal | None:
    if customer is None:
        return Refusal(
            RefusalCode.NO_VOICE_CONSENT, "no customer holds this number, so no consent to calls is recorded"
        )
    if (customer.consent or {}).get(Channel.VOICE.value) is not True:
        given = (customer.consent or {}).get(Channel.VOICE.value)
        why = "refused calls" if given is False else "has not given consent to calls"
        return Refusal(RefusalCode.NO_VOICE_CONSENT, f"the customer {why}", {"customer_id": customer.id})
    return None


async def dialable(
    session: AsyncSession,
    number: str,
    profile: RegulatoryProfile,
    now: datetime,
    *,
    customer: Customer | None = None,
    last_abandoned_at: datetime | None = None,
    agent_reserved: bool = False,
) -> Dialability:
    """Every rule ``profile`` holds for dialling ``number`` at ``now``. ``customer``: the one the
    call is for (else the customer holding the number, if any); ``last_abandoned_at``: when a call
    to this number was last abandoned (the redial lockout); ``agent_reserved``: an agent waits for
    this call (lifts the lockout)."""
    try:
        e164 = do_not_call.normalise_e164(number)
    except InvalidInput as exc:
        return Dialability(number, False, [Refusal(RefusalCode.INVALID_NUMBER, str(exc))])
    if customer is None:
        customer = await _customer_for(session, e164)
    reasons: list[Refusal] = []
    warnings: list[str] = []

    window = calling_window(e164, now, profile, customer.timezone if customer else None)
    if not window.callable:
        code = RefusalCode.OUTSIDE_CALLING_HOURS if window.zones else RefusalCode.UNKNOWN_TIME_ZONE
        details: dict[str, Any] = {"zones": list(window.zones), "zone_source": window.source.value}
        if window.next_callable is not None:
            details["next_callable"] = window.next_callable.isoformat()
        reasons.append(Refusal(code, window.reason, details))

    listed = await do_not_call.check(session, e164)
    if listed.internal:
        sources = [s.value for s in listed.internal]
        reasons.append(
            Refusal(
                RefusalCode.INTERNAL_DNC,
                f"on the company's do-not-call list (added by {', '.join(sources)})",
                {"sources": sources},
            )
        )
    if listed.national is not None:
        reasons.append(
            Refusal(
                RefusalCode.NATIONAL_DNC,
                f"on the national do-not-call list (file of {listed.national.isoformat()})",
                {"file_date": listed.national.isoformat()},
            )
        )
    file_date = await do_not_call.national_file_date(session)
    stale = (
        None
        if file_date is None
        else do_not_call.national_file_age_warning(file_date, now, profile.national_list_max_age)
    )
    if file_date is None:
        warnings.append("no national do-not-call file has been imported")
    elif stale:
        warnings.append(stale)

    if profile.requires_voice_consent and (refusal := _consent_refusal(customer)) is not None:
        reasons.append(refusal)

    until = redial_allowed_at(last_abandoned_at, profile, agent_reserved=agent_reserved)
    if until is not None and now < until:
        reasons.append(
            Refusal(
                RefusalCode.ABANDONED_RECENTLY,
                f"a call to this number was abandoned; it may be called again from {until.isoformat()} "
                "or with an agent reserved for the call",
                {
                    "abandoned_at": last_abandoned_at.isoformat() if last_abandoned_at else None,
                    "until": until.isoformat(),
                },
            )
        )
    return Dialability(
        e164, not reasons, reasons, warnings, window.next_callable if not window.callable else None
    )
