"""The hopper's pure parts: which cached zone sets are inside the calling window (a number that
may ring in several zones only when all are), and the campaign's own schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from crm_core.models import Campaign
from crm_core.rules.regulatory_profile import UK, US
from crm_core.services.call_lists import zone_key
from crm_core.services.hopper import callable_zone_keys, in_schedule

IDAHO = zone_key("+12085550100", None)  # area code 208: Boise and Los Angeles time


def test_a_zone_key_is_the_customers_zone_else_every_zone_of_the_number() -> None:
    assert IDAHO == "America/Boise America/Los_Angeles"
    assert zone_key("+12085550100", "Europe/London") == "Europe/London"
    assert zone_key("+12085550100", "Not/AZone") == IDAHO
    assert zone_key("+80012345678", None) == ""


def test_a_multi_zone_key_is_open_only_when_every_zone_is() -> None:
    keys = [IDAHO, "America/Los_Angeles", "Europe/London", ""]
    # 15:30 UTC: 08:30 in Boise (MST), 07:30 in Los Angeles, 15:30 in London.
    assert callable_zone_keys(keys, datetime(2026, 12, 7, 15, 30, tzinfo=UTC), US) == ["Europe/London"]
    # 16:30 UTC: both American zones open; London still open.
    assert callable_zone_keys(keys, datetime(2026, 12, 7, 16, 30, tzinfo=UTC), US) == sorted(keys[:3])
    # 21:00 UTC: London's window (08:00-21:00) has just closed.
    assert callable_zone_keys(keys, datetime(2026, 12, 7, 21, tzinfo=UTC), UK) == sorted(keys[:2])


def test_the_campaign_schedule_is_read_in_its_own_zone() -> None:
    campaign = Campaign(
        schedule_timezone="Asia/Shanghai",
        starts_on=date(2026, 12, 8),
        ends_on=date(2026, 12, 31),
        daily_start=time(9),
        daily_end=time(18),
    )
    assert not in_schedule(campaign, datetime(2026, 12, 7, 1, tzinfo=UTC))  # 09:00 on the 7th in Shanghai
    assert in_schedule(campaign, datetime(2026, 12, 8, 1, tzinfo=UTC))  # 09:00 on the 8th
    assert not in_schedule(campaign, datetime(2026, 12, 8, 10, tzinfo=UTC))  # 18:00: closed
    assert in_schedule(campaign, datetime(2026, 12, 31, 9, 59, tzinfo=UTC))
    assert not in_schedule(campaign, datetime(2026, 12, 31, 16, 1, tzinfo=UTC))  # the 1st in Shanghai
