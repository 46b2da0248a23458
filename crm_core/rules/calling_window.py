"""Calling hours in the callee's local time.

The zone comes from the customer's own setting, else from the number (phonenumbers' geocoding
data). A number that spans several zones (a toll-free number, an area code across a zone line)
is callable only when every one of its zones is inside the window; a number with no known zone
is refused. Pure: ``now`` is given.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from crm_core.rules.regulatory_profile import RegulatoryProfile

UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place
SEARCH_DAYS = 8  # how far ahead the next callable moment is looked for


class ZoneSource(enum.StrEnum):
    CUSTOMER = "customer"
    NUMBER = "number"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CalleeZones:
    zones: tuple[str, ...]
    source: ZoneSource


@dataclass(frozen=True, slots=True)
class WindowDecision:
    callable: bool
    reason: str
    zones: tuple[str, ...]
    source: ZoneSource
    next_callable: datetime | None = None
    """When refused: the first moment every zone is inside the window (None: unknown zone, or no
    such moment within a week, e.g. a number spanning zones too far apart)."""


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def callee_zones(e164: str, customer_timezone: str | None = None) -> CalleeZones:
    """The zones to respect when calling ``e164``: the customer's valid setting, else the number's."""
    if _zone(customer_timezone) is not None:
        assert customer_timezone is not None
        return CalleeZones((customer_timezone,), ZoneSource.CUSTOMER)
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return CalleeZones((), ZoneSource.UNKNOWN)
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != UNKNOWN_ZONE and _zone(z))
    return CalleeZones(zones, ZoneSource.NUMBER) if zones else CalleeZones((), ZoneSource.UNKNOWN)


def _inside(zone: str, at: datetime, profile: RegulatoryProfile) -> bool:
    local = at.astimezone(ZoneInfo(zone)).time()
    return profile.call_start <= local < profile.call_end


def next_callable(zones: Sequence[str], now: datetime, profile: RegulatoryProfile) -> datetime | None:
    """The first moment at or after ``now`` when every zone is inside the window. It is ``now`` or
    the opening of one zone's window (the common window opens when its last zone opens)."""
    if all(_inside(z, now, profile) for z in zones):
        return now
    candidates: set[datetime] = set()
    for zone in zones:
        tz = ZoneInfo(zone)
        first: date = now.astimezone(tz).date()
        for days in range(SEARCH_DAYS + 1):
            day = first + timedelta(days=days)
            opening = datetime.combine(day, profile.call_start, tzinfo=tz).astimezone(UTC)
            if opening > now:
                candidates.add(opening)
    for moment in sorted(candidates):
        if all(_inside(z, moment, profile) for z in zones):
            return moment
    return None


def _local_times(zones: Sequence[str], at: datetime) -> str:
    return ", ".join(f"{z} {at.astimezone(ZoneInfo(z)):%H:%M}" for z in zones)


def calling_window(
    e164: str, now: datetime, profile: RegulatoryProfile, customer_timezone: str | None = None
) -> WindowDecision:
    """Whether ``e164`` may be called at ``now`` under ``profile``'s calling hours."""
    callee = callee_zones(e164, customer_timezone)
    if not callee.zones:
        return WindowDecision(
            False,
            f"the time zone of {e164} is unknown, so its local time cannot be checked",
            (),
            callee.source,
        )
    window = f"{profile.call_start:%H:%M}-{profile.call_end:%H:%M}"
    outside = [z for z in callee.zones if not _inside(z, now, profile)]
    if not outside:
        return WindowDecision(
            True, f"inside {window} local ({_local_times(callee.zones, now)})", callee.zones, callee.source
        )
    later = next_callable(callee.zones, now, profile)
    reason = f"outside {window} local in {_local_times(outside, now)}"
    if later is None:
        reason += f"; its zones are never all inside {window} at once"
    return WindowDecision(False, reason, callee.zones, callee.source, later)
