"""Opening hours: weekly time ranges in one time zone, minus holidays."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from crm_core.errors import InvalidInput

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Ranges = tuple[tuple[time, time | None], ...]  # end None = until midnight


def parse_ranges(text: str, field_name: str) -> Ranges:
    """``"08:00-12:00, 13:00-18:00"`` (``24:00`` ends at midnight; empty = closed all day)."""
    ranges: list[tuple[time, time | None]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RANGE.match(part)
        if not match:
            raise InvalidInput(f"{part!r} is not a range like 08:00-18:00", field_name)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise InvalidInput(f"{part!r} is not a time of day", field_name)
        start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
        if end is not None and end <= start:
            raise InvalidInput(f"{part!r} ends before it starts", field_name)
        ranges.append((start, end))
    return tuple(ranges)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    timezone: str = "UTC"
    weekly: Mapping[int, Ranges] = field(default_factory=dict)  # 0 = Monday
    holidays: frozenset[date] = frozenset()

    @classmethod
    def from_config(cls, timezone: str, days: Mapping[str, str], holidays: Iterable[date]) -> BusinessHours:
        unknown = set(days) - set(WEEKDAYS)
        if unknown:
            raise InvalidInput(f"unknown weekdays: {', '.join(sorted(unknown))}", "hours")
        weekly = {i: parse_ranges(days.get(name, ""), name) for i, name in enumerate(WEEKDAYS)}
        ZoneInfo(timezone)
        return cls(timezone=timezone, weekly=weekly, holidays=frozenset(holidays))

    @classmethod
    def always_open(cls) -> BusinessHours:
        return cls(weekly={i: ((time(0, 0), None),) for i in range(7)})

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        if local.date() in self.holidays:
            return False
        now = local.time().replace(tzinfo=None)
        return any(
            start <= now and (end is None or now < end) for start, end in self.weekly.get(local.weekday(), ())
        )
