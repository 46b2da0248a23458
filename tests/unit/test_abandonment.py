"""The abandonment rule: the 2-second classification, the rolling windows (30 days US, 24 hours
UK), the rate against the limit with the fall back to progressive, and the UK 72-hour lockout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.rules.abandonment import (
    AnswerEvent,
    AnswerOutcome,
    WindowCounts,
    abandonment_status,
    classify_answer,
    counts_in_window,
    redial_allowed_at,
    redial_locked,
)
from crm_core.rules.regulatory_profile import UK, US

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
GREETING = NOW - timedelta(seconds=10)
A, C, F = AnswerOutcome.ABANDONED, AnswerOutcome.CONNECTED, AnswerOutcome.AMD_FALSE_POSITIVE


@pytest.mark.parametrize(
    ("joined_after", "now_after", "outcome"),
    [
        (timedelta(seconds=0.5), timedelta(seconds=0.5), AnswerOutcome.CONNECTED),
        (timedelta(seconds=2), timedelta(seconds=5), AnswerOutcome.CONNECTED),
        (timedelta(seconds=2.001), timedelta(seconds=5), AnswerOutcome.ABANDONED),
        (None, timedelta(seconds=2), AnswerOutcome.PENDING),
        (None, timedelta(seconds=2.001), AnswerOutcome.ABANDONED),
    ],
)
def test_a_live_answer_not_joined_within_two_seconds_of_the_greeting_is_abandoned(
    joined_after: timedelta | None, now_after: timedelta, outcome: AnswerOutcome
) -> None:
    joined = None if joined_after is None else GREETING + joined_after
    assert classify_answer(GREETING, joined, GREETING + now_after, US) is outcome


def test_the_us_window_is_the_rolling_thirty_days_edges_included_correctly() -> None:
    events = [
        AnswerEvent(NOW - timedelta(days=30), A),  # exactly 30 days old: out
        AnswerEvent(NOW - timedelta(days=30) + timedelta(seconds=1), A),  # in
        AnswerEvent(NOW, C),  # in
        AnswerEvent(NOW + timedelta(seconds=1), A),  # not yet: out
        AnswerEvent(NOW - timedelta(days=2), F),
    ]
    assert counts_in_window(events, NOW, US) == WindowCounts(connected=1, abandoned=1, amd_false_positives=1)


def test_the_uk_window_is_twenty_four_hours() -> None:
    events = [
        AnswerEvent(NOW - timedelta(hours=24), A),
        AnswerEvent(NOW - timedelta(hours=23, minutes=59), A),
    ]
    assert counts_in_window(events, NOW, UK) == WindowCounts(abandoned=1)
    assert counts_in_window(events, NOW, US) == WindowCounts(abandoned=2)


def test_amd_false_positives_count_as_abandoned_only_under_the_uk_rule() -> None:
    counts = WindowCounts(connected=95, abandoned=2, amd_false_positives=1)
    us, uk = abandonment_status(counts, US), abandonment_status(counts, UK)
    assert (us.abandoned, us.live) == (2, 97)
    assert (uk.abandoned, uk.live) == (3, 98)
    assert uk.rate == pytest.approx(3 / 98)


@pytest.mark.parametrize(
    ("connected", "abandoned", "predictive", "budget"),
    [
        (0, 0, False, 0),  # no history: one abandoned answer would be 100%
        (32, 0, False, 0),  # 1/33 = 3.03%
        (33, 0, True, 1),  # 1/34 = 2.94%
        (98, 2, True, 1),  # 3/101 = 2.97%
        (97, 3, False, 0),  # 3% now: the next abandoned answer would cross the limit
        (90, 10, False, 0),  # over the limit
        (1000, 0, True, 30),
    ],
)
def test_predictive_dialling_stops_before_the_limit_would_be_crossed(
    connected: int, abandoned: int, predictive: bool, budget: int
) -> None:
    status = abandonment_status(WindowCounts(connected=connected, abandoned=abandoned), US)
    assert status.predictive_allowed is predictive
    assert status.budget == budget
    if budget:
        assert (abandoned + budget) / (connected + abandoned + budget) <= US.abandonment_limit
    assert (abandoned + budget + 1) / (connected + abandoned + budget + 1) > US.abandonment_limit


def test_the_rate_is_abandoned_over_live_answers() -> None:
    status = abandonment_status(WindowCounts(connected=97, abandoned=3), US)
    assert status.rate == pytest.approx(0.03) and status.limit == 0.03
    assert abandonment_status(WindowCounts(), US).rate == 0.0


def test_the_uk_profile_locks_an_abandoned_number_for_72_hours_unless_an_agent_is_reserved() -> None:
    abandoned_at = NOW - timedelta(hours=71, minutes=59)
    assert redial_locked(abandoned_at, NOW, UK, agent_reserved=False)
    assert redial_allowed_at(abandoned_at, UK, agent_reserved=False) == abandoned_at + timedelta(hours=72)
    assert not redial_locked(abandoned_at, NOW, UK, agent_reserved=True)
    assert not redial_locked(NOW - timedelta(hours=72), NOW, UK, agent_reserved=False)
    assert not redial_locked(abandoned_at, NOW, US, agent_reserved=False)
    assert not redial_locked(None, NOW, UK, agent_reserved=False)
