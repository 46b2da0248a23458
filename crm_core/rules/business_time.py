"""Business-time arithmetic: SLA clocks that count only a calendar's open hours.

A :class:`BusinessCalendar` is weekly opening spans (several a day allowed) in one time zone, minus
holidays. Moments are timezone-aware; wall times are turned into instants day by day, so a day on
which the clocks change is as long as it really is (23 or 25 hours when open all day).

Wall times that do not exist (the hour skipped in spring) begin at the instant the clocks jump;
wall times that happen twice (the hour repeated in autumn) open at their first occurrence and close
at their second, so an open span never loses time to a clock change.

Pauses (while a ticket waits on the customer) are instants ``(start, end)``; an open pause has end
``None``. Business time never runs inside a pause.

A span across midnight is written as two spans, ``22:00-24:00`` on one day and ``00:00-06:00`` on
the next: time runs on through midnight from one to the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from crm_core.errors import InvalidInput
from crm_core.rules.business_hours import WEEKDAYS, BusinessHours, Ranges, parse_ranges

Pause = tuple[datetime, datetime | None]
Span = tuple[datetime, datetime]

# Far enough for any real target; a calendar closed this long counts as never open.
MAX_CLOSED_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    timezone: str = "UTC"
    weekly: Mapping[int, Ranges] = field(default_factory=dict)  # 0 = Monday
    holidays: frozenset[date] = frozenset()
    # Each date's open instants, worked out once per calendar (clocks are computed by the thousand).
    _days: dict[date, tuple[Span, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(
        cls, timezone: str, days: Mapping[str, str], holidays: Iterable[date]
    ) -> BusinessCalendar:
        return cls.from_hours(BusinessHours.from_config(timezone, days, holidays))

    @classmethod
    def from_hours(cls, hours: BusinessHours) -> BusinessCalendar:
        return cls(timezone=hours.timezone, weekly=dict(hours.weekly), holidays=hours.holidays)

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> BusinessCalendar:
        return cls(timezone=timezone, weekly={i: ((time(0, 0), None),) for i in range(7)})

    def weekly_text(self) -> dict[str, str]:
        """The weekly hours as ``{"monday": "08:00-12:00, 13:00-18:00", ...}`` (the config form)."""
        return {name: _ranges_text(self.weekly.get(i, ())) for i, name in enumerate(WEEKDAYS)}

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def has_open_hours(self) -> bool:
        return any(self.weekly.get(i) for i in range(7))

    def is_open(self, at: datetime) -> bool:
        _require_aware(at)
        return any(start <= at < end for start, end in self.open_spans(at, at + timedelta(days=1)))

    def day_spans(self, day: date) -> tuple[Span, ...]:
        """The open instants (UTC) of one local date; empty on holidays and closed days."""
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = tuple(self._work_out_day(day))
        return known

    def _work_out_day(self, day: date) -> list[Span]:
        if day in self.holidays:
            return []
        zone = self.zone
        spans: list[Span] = []
        for start, end in self.weekly.get(day.weekday(), ()):
            opens = _instant(datetime.combine(day, start), zone, first=True)
            if end is None:
                closes = _instant(datetime.combine(day + timedelta(days=1), time(0, 0)), zone, first=True)
            else:
                closes = _instant(datetime.combine(day, end), zone, first=False)
            if closes > opens:
                spans.append((opens, closes))
        return spans

    def open_spans(self, start: datetime, end: datetime | None = None) -> Iterator[Span]:
        """Open time from ``start`` (to ``end`` if given), in order, overlapping ranges merged.

        Without ``end`` the iterator is endless; it raises :class:`InvalidInput` when the calendar
        stays closed for more than ``MAX_CLOSED_DAYS`` days in a row.
        """
        _require_aware(start)
        start = start.astimezone(UTC)  # arithmetic on a zoned datetime would be wall-clock arithmetic
        if end is not None:
            _require_aware(end)
            end = end.astimezone(UTC)
            if end <= start:
                return
        if not self.has_open_hours():
            raise InvalidInput("the calendar has no open hours", "weekly")
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        pending: Span | None = None
        closed_days = 0
        while True:
            spans = self.day_spans(day)
            closed_days = 0 if spans else closed_days + 1
            if closed_days > MAX_CLOSED_DAYS:
                raise InvalidInput(f"the calendar is closed for more than {MAX_CLOSED_DAYS} days", "holidays")
            for opens, closes in spans:
                opens, closes = max(opens, start), closes if end is None else min(closes, end)
                if closes <= opens:
                    continue
                if pending is not None and opens < pending[1]:  # overlapping ranges count once
                    pending = (pending[0], max(pending[1], closes))
                    continue
                if pending is not None:
                    yield pending
                pending = (opens, closes)
            day += timedelta(days=1)
            if end is not None and _instant(datetime.combine(day, time(0, 0)), self.zone, first=True) >= end:
                break
        if pending is not None:
            yield pending

    def counting_spans(
        self, start: datetime, pauses: Sequence[Pause] = (), end: datetime | None = None
    ) -> Iterator[Span]:
        """Open time from ``start`` minus the pauses: the time an SLA clock runs."""
        ordered = _merged_pauses(pauses)
        for opens, closes in self.open_spans(start, end):
            cursor = opens
            for p_start, p_end in ordered:
                if p_end is not None and p_end <= cursor:
                    continue
                if p_start >= closes:
                    break
                if p_start > cursor:
                    yield cursor, p_start
                if p_end is None:
                    return  # paused until further notice: the clock stops here
                cursor = max(cursor, p_end)
                if cursor >= closes:
                    break
            if cursor < closes:
                yield cursor, closes

    def add(self, start: datetime, amount: timedelta, pauses: Sequence[Pause] = ()) -> datetime | None:
        """The moment (UTC) ``amount`` of business time has run from ``start``.

        ``None`` while an open pause stops the clock before the amount is reached.
        """
        if amount < timedelta(0):
            raise InvalidInput("business time to add cannot be negative", "amount")
        left = amount
        for opens, closes in self.counting_spans(start, pauses):
            if closes - opens >= left:
                return opens + left
            left -= closes - opens
        return None

    def between(self, start: datetime, end: datetime, pauses: Sequence[Pause] = ()) -> timedelta:
        """Business time from ``start`` to ``end`` (zero when ``end`` is not later), pauses left out."""
        return sum(
            (closes - opens for opens, closes in self.counting_spans(start, pauses, end)),
            timedelta(0),
        )

    def add_minutes(self, start: datetime, minutes: float, pauses: Sequence[Pause] = ()) -> datetime | None:
        return self.add(start, timedelta(minutes=minutes), pauses)

    def minutes_between(self, start: datetime, end: datetime, pauses: Sequence[Pause] = ()) -> float:
        return self.between(start, end, pauses) / timedelta(minutes=1)


def calendar_from_text(
    timezone: str, days: Mapping[str, str], holidays: Iterable[date] = ()
) -> BusinessCalendar:
    """A calendar from its stored form; a bad zone or range raises :class:`InvalidInput`."""
    try:
        ZoneInfo(timezone)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise InvalidInput(f"{timezone!r} is not a time zone", "timezone") from exc
    unknown = set(days) - set(WEEKDAYS)
    if unknown:
        raise InvalidInput(f"unknown weekdays: {', '.join(sorted(unknown))}", "weekly")
    weekly = {i: parse_ranges(days.get(name, ""), name) for i, name in enumerate(WEEKDAYS)}
    return BusinessCalendar(timezone=timezone, weekly=weekly, holidays=frozenset(holidays))


def _ranges_text(ranges: Ranges) -> str:
    return ", ".join(f"{s:%H:%M}-{'24:00' if e is None else format(e, '%H:%M')}" for s, e in ranges)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("business time needs timezone-aware moments", "at")


def _instant(wall: datetime, zone: tzinfo, *, first: bool) -> datetime:
    """The UTC instant of a local wall time (see the module docstring for gaps and repeats)."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return early
    if early < late:  # the wall time happened twice
        return early if first else late
    # In the gap: fold=0 reads it with the offset before the change (an instant after the jump),
    # fold=1 with the offset after it (an instant before); the jump lies between them.
    low, high = late, early
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == late.astimezone(zone).utcoffset():
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)  # changes happen on whole seconds


def _merged_pauses(pauses: Sequence[Pause]) -> list[Pause]:
    merged: list[Pause] = []
    for p_start, p_end in sorted(pauses, key=lambda p: p[0]):
        _require_aware(p_start)
        p_start, p_end = p_start.astimezone(UTC), None if p_end is None else p_end.astimezone(UTC)
        if p_end is not None and p_end <= p_start:
            continue
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None or p_start <= last_end:
                merged[-1] = (last_start, None if last_end is None or p_end is None else max(last_end, p_end))
                continue
        merged.append((p_start, p_end))
    return merged
