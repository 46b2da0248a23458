"""Call status ordering and business hours."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm_core.errors import InvalidInput
from crm_core.rules.business_hours import BusinessHours, parse_ranges
from crm_core.rules.call_status import should_apply
from crm_core.voice import CallStatus


@pytest.mark.parametrize(
    ("current", "current_seq", "new", "new_seq", "applies"),
    [
        ("ringing", 1, CallStatus.IN_PROGRESS, 2, True),
        ("in-progress", 2, CallStatus.RINGING, 1, False),  # late ringing after answer
        ("in-progress", 2, CallStatus.COMPLETED, 3, True),
        ("completed", 3, CallStatus.IN_PROGRESS, 2, False),  # terminal is final
        ("completed", 3, CallStatus.COMPLETED, 3, False),  # redelivery
        ("no-answer", 2, CallStatus.COMPLETED, 3, False),  # first terminal wins
        ("ringing", 1, CallStatus.RINGING, 1, False),  # redelivery
        ("ringing", 1, CallStatus.RINGING, 4, True),  # same stage, later sequence
        ("ringing", None, CallStatus.RINGING, 4, False),
        ("queued-for-agent", None, CallStatus.RINGING, 0, False),
        ("queued-for-agent", None, CallStatus.IN_PROGRESS, 2, False),  # Twilio: our queue TwiML runs
        ("offering", None, CallStatus.IN_PROGRESS, 3, False),
        ("queued-for-agent", None, CallStatus.COMPLETED, 5, True),
        ("logged", None, CallStatus.INITIATED, 0, True),
    ],
)
def test_status_never_moves_backwards(
    current: str, current_seq: int | None, new: CallStatus, new_seq: int | None, applies: bool
) -> None:
    assert should_apply(current, current_seq, new, new_seq) is applies


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_weekly_ranges_in_the_configured_zone_and_holidays() -> None:
    days = {"monday": "08:00-12:00, 13:00-18:00", "saturday": "10:00-24:00"}
    hours = BusinessHours.from_config("Europe/Paris", days, [date(2026, 12, 28)])
    # 2026-11-23 is a Monday; Paris is UTC+1 in November.
    assert hours.is_open(_at("2026-11-23T07:30:00"))  # 08:30 in Paris
    assert not hours.is_open(_at("2026-11-23T11:30:00"))  # lunch
    assert not hours.is_open(_at("2026-11-23T17:00:00"))  # 18:00: closed
    assert hours.is_open(_at("2026-11-28T22:59:00"))  # Saturday until midnight
    assert not hours.is_open(_at("2026-11-29T10:00:00"))  # Sunday: not listed
    assert not hours.is_open(_at("2026-12-28T09:00:00"))  # a holiday Monday
    assert BusinessHours.always_open().is_open(_at("2026-12-25T03:00:00"))


@pytest.mark.parametrize("text", ["9-5", "18:00-08:00", "25:00-26:00", "08:00-24:30", "08:60-09:00"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ranges(text, "monday")


def test_unknown_weekday_is_refused() -> None:
    with pytest.raises(InvalidInput, match="funday"):
        BusinessHours.from_config("UTC", {"funday": "08:00-09:00"}, [])
