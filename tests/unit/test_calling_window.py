"""Calling hours in the callee's local time: zones from the customer or the number, every zone of
a multi-zone number inside the window, DST change days, the next callable moment."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from crm_core.rules.calling_window import ZoneSource, callee_zones, calling_window
from crm_core.rules.regulatory_profile import UK, US, RegulatoryProfile

NEW_YORK = "+12125550100"
SOUTH_DAKOTA = "+16055550100"  # area code 605: Mountain and Central time
TOLL_FREE = "+18005550100"
UK_MOBILE = "+447911123456"
LONDON = "+442079460000"
CHINA_MOBILE = "+8613800138000"
BEIJING = "+861012345678"
INTERNATIONAL_FREEPHONE = "+80012345678"  # valid, but placed in no zone


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_new_york_number_is_callable_from_eight_to_nine_local_end_excluded() -> None:
    winter = utc(2026, 1, 15)  # EST, UTC-5
    assert not calling_window(NEW_YORK, winter.replace(hour=12, minute=59), US).callable
    assert calling_window(NEW_YORK, winter.replace(hour=13), US).callable
    assert calling_window(NEW_YORK, utc(2026, 1, 16, 1, 59, 59), US).callable
    late = calling_window(NEW_YORK, utc(2026, 1, 16, 2), US)
    assert not late.callable
    assert late.zones == ("America/New_York",) and late.source is ZoneSource.NUMBER
    assert "America/New_York 21:00" in late.reason
    assert late.next_callable == utc(2026, 1, 16, 13)


def test_spring_forward_day_opens_an_hour_earlier_in_utc() -> None:
    # 2026-03-08: New York moves from UTC-5 to UTC-4 at 02:00 local.
    evening_before = calling_window(NEW_YORK, utc(2026, 3, 8, 2, 30), US)  # 21:30 EST on the 7th
    assert not evening_before.callable
    assert evening_before.next_callable == utc(2026, 3, 8, 12)  # 08:00 EDT, not 13:00
    assert not calling_window(NEW_YORK, utc(2026, 3, 8, 11, 59), US).callable
    assert calling_window(NEW_YORK, utc(2026, 3, 8, 12), US).callable


def test_fall_back_day_opens_an_hour_later_in_utc() -> None:
    # 2026-11-01: New York moves from UTC-4 back to UTC-5.
    evening_before = calling_window(NEW_YORK, utc(2026, 11, 1, 1), US)  # 21:00 EDT on Oct 31
    assert not evening_before.callable
    assert evening_before.next_callable == utc(2026, 11, 1, 13)
    assert not calling_window(NEW_YORK, utc(2026, 11, 1, 12, 30), US).callable


def test_uk_numbers_follow_british_summer_time() -> None:
    # 2026-03-29: the UK moves to BST (UTC+1) at 01:00 UTC.
    assert not calling_window(LONDON, utc(2026, 3, 28, 7, 30), UK).callable  # 07:30 GMT
    assert calling_window(LONDON, utc(2026, 3, 29, 7, 30), UK).callable  # 08:30 BST
    mobile = calling_window(UK_MOBILE, utc(2026, 3, 29, 20, 0), UK)  # 21:00 BST
    assert not mobile.callable
    assert set(mobile.zones) >= {"Europe/London", "Europe/Jersey"}
    assert mobile.next_callable == utc(2026, 3, 30, 7)


@pytest.mark.parametrize("number", [CHINA_MOBILE, BEIJING])
def test_chinese_numbers_are_checked_in_shanghai_time(number: str) -> None:
    assert callee_zones(number).zones == ("Asia/Shanghai",)
    assert not calling_window(number, utc(2026, 7, 1, 23, 59), US).callable  # 07:59 on the 2nd
    assert calling_window(number, utc(2026, 7, 2, 0), US).callable
    late = calling_window(number, utc(2026, 7, 2, 13), US)  # 21:00
    assert not late.callable and late.next_callable == utc(2026, 7, 3, 0)


def test_a_number_spanning_two_zones_needs_both_inside_the_window() -> None:
    assert callee_zones(SOUTH_DAKOTA).zones == ("America/Denver", "America/North_Dakota/Center")
    # 08:30 Central is still 07:30 Mountain.
    morning = calling_window(SOUTH_DAKOTA, utc(2026, 1, 15, 14, 30), US)
    assert not morning.callable
    assert "America/Denver 07:30" in morning.reason and "Center" not in morning.reason
    assert morning.next_callable == utc(2026, 1, 15, 15)
    assert calling_window(SOUTH_DAKOTA, utc(2026, 1, 15, 15), US).callable
    # 20:59 Mountain is 21:59 Central.
    evening = calling_window(SOUTH_DAKOTA, utc(2026, 1, 16, 3, 59), US)
    assert not evening.callable and evening.next_callable == utc(2026, 1, 16, 15)


def test_toll_free_numbers_wait_until_every_zone_they_may_ring_in_is_inside() -> None:
    zones = callee_zones(TOLL_FREE).zones
    assert {"America/New_York", "Pacific/Honolulu", "Pacific/Guam"} <= set(zones)
    noon_in_new_york = utc(2026, 1, 15, 17)  # 07:00 in Honolulu
    decision = calling_window(TOLL_FREE, noon_in_new_york, US)
    assert not decision.callable and "Pacific/Honolulu 07:00" in decision.reason
    opens = decision.next_callable
    assert opens is not None and opens > noon_in_new_york
    assert calling_window(TOLL_FREE, opens, US).callable
    assert not calling_window(TOLL_FREE, opens - timedelta(seconds=1), US).callable


def test_the_customers_own_zone_wins_over_the_numbers() -> None:
    at = utc(2026, 1, 15, 13, 30)  # 08:30 in New York, 05:30 in Los Angeles
    assert calling_window(NEW_YORK, at, US).callable
    moved = calling_window(NEW_YORK, at, US, customer_timezone="America/Los_Angeles")
    assert not moved.callable
    assert moved.zones == ("America/Los_Angeles",) and moved.source is ZoneSource.CUSTOMER
    assert moved.next_callable == utc(2026, 1, 15, 16)


def test_a_customer_zone_that_does_not_exist_falls_back_to_the_number() -> None:
    decision = calling_window(NEW_YORK, utc(2026, 1, 15, 13, 30), US, customer_timezone="Mars/Olympus")
    assert decision.callable and decision.source is ZoneSource.NUMBER


@pytest.mark.parametrize("number", [INTERNATIONAL_FREEPHONE, "+99912345", "not a number"])
def test_a_number_with_no_known_zone_is_refused_with_the_reason(number: str) -> None:
    decision = calling_window(number, utc(2026, 1, 15, 17), US)
    assert not decision.callable
    assert decision.source is ZoneSource.UNKNOWN and decision.zones == ()
    assert "time zone" in decision.reason and decision.next_callable is None


def test_profiles_set_their_own_hours() -> None:
    strict = RegulatoryProfile(name="strict", call_start=time(9), call_end=time(20))
    at = utc(2026, 1, 15, 13, 30)  # 08:30 in New York
    assert calling_window(NEW_YORK, at, US).callable
    refused = calling_window(NEW_YORK, at, strict)
    assert not refused.callable and "09:00-20:00" in refused.reason
    assert refused.next_callable == utc(2026, 1, 15, 14)
    with pytest.raises(ValueError, match="end after"):
        RegulatoryProfile(name="bad", call_start=time(21), call_end=time(8))
