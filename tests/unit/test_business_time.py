"""Business-time arithmetic: weekends, holidays, several spans a day, spans across midnight, clock
changes in New York and London, Shanghai's lunch break, and pauses while a ticket is pending."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_core.errors import InvalidInput
from crm_core.rules.business_time import BusinessCalendar, calendar_from_text

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAYS_9_TO_5 = {d: "09:00-17:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
H = timedelta(hours=1)


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def new_york(holidays: tuple[date, ...] = ()) -> BusinessCalendar:
    return calendar_from_text("America/New_York", WEEKDAYS_9_TO_5, holidays)


def test_time_added_late_on_friday_runs_on_monday_morning() -> None:
    friday = at(NY, 2026, 1, 16, 16, 30)
    assert new_york().add_minutes(friday, 60) == at(NY, 2026, 1, 19, 9, 30)
    assert new_york().minutes_between(friday, at(NY, 2026, 1, 19, 9, 30)) == 60


def test_a_target_reached_exactly_at_closing_is_due_that_evening() -> None:
    assert new_york().add_minutes(at(NY, 2026, 1, 14, 16, 30), 30) == at(NY, 2026, 1, 14, 17)


def test_a_clock_started_on_the_weekend_starts_running_at_monday_opening() -> None:
    saturday = at(NY, 2026, 1, 17, 11)
    assert new_york().add_minutes(saturday, 0) == at(NY, 2026, 1, 19, 9)
    assert new_york().add_minutes(saturday, 90) == at(NY, 2026, 1, 19, 10, 30)
    assert new_york().minutes_between(saturday, at(NY, 2026, 1, 18, 23)) == 0


def test_a_holiday_is_skipped_like_a_sunday() -> None:
    mlk_day = date(2026, 1, 19)
    calendar = new_york((mlk_day,))
    assert calendar.add_minutes(at(NY, 2026, 1, 16, 16, 30), 60) == at(NY, 2026, 1, 20, 9, 30)
    assert not calendar.is_open(at(NY, 2026, 1, 19, 10))
    assert calendar.is_open(at(NY, 2026, 1, 20, 10))
    assert calendar.between(at(NY, 2026, 1, 16, 9), at(NY, 2026, 1, 21, 9)) == 16 * H


def test_several_spans_a_day_skip_the_lunch_break_in_shanghai() -> None:
    calendar = calendar_from_text(
        "Asia/Shanghai",
        {"monday": "08:30-12:00, 13:30-18:00", "tuesday": "08:30-12:00, 13:30-18:00"},
        (),
    )
    monday = at(SHANGHAI, 2026, 9, 28, 8, 30)
    assert calendar.add(monday, 4 * H) == at(SHANGHAI, 2026, 9, 28, 14)
    assert calendar.add(monday, 8 * H) == at(SHANGHAI, 2026, 9, 28, 18)
    assert calendar.add(monday, 9 * H) == at(SHANGHAI, 2026, 9, 29, 9, 30)
    assert calendar.between(at(SHANGHAI, 2026, 9, 28, 11), at(SHANGHAI, 2026, 9, 28, 14)) == 90 * timedelta(
        minutes=1
    )
    # Shanghai keeps UTC+8 all year: 08:30 local is 00:30 UTC.
    assert calendar.add(monday, timedelta(0)) == datetime(2026, 9, 28, 0, 30, tzinfo=UTC)


def test_national_day_week_holidays_in_shanghai() -> None:
    golden_week = tuple(date(2026, 10, d) for d in range(1, 8))
    weekdays = {d: "09:00-18:00" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
    calendar = calendar_from_text("Asia/Shanghai", weekdays, golden_week)
    last_working_hour = at(SHANGHAI, 2026, 9, 30, 17)
    assert calendar.add(last_working_hour, 2 * H) == at(SHANGHAI, 2026, 10, 8, 10)


def test_a_span_across_midnight_is_two_spans_that_run_on_through_midnight() -> None:
    night_shift = {d: "22:00-24:00" for d in ("monday", "tuesday")} | {"tuesday": "00:00-06:00, 22:00-24:00"}
    calendar = calendar_from_text("Europe/London", night_shift, ())
    monday_night = at(LONDON, 2026, 1, 12, 22)
    spans = list(calendar.open_spans(monday_night, at(LONDON, 2026, 1, 13, 12)))
    midnight = at(LONDON, 2026, 1, 13).astimezone(UTC)
    assert spans == [(monday_night, midnight), (midnight, at(LONDON, 2026, 1, 13, 6))]
    assert calendar.add(monday_night, 3 * H) == at(LONDON, 2026, 1, 13, 1)
    assert calendar.add(monday_night, 9 * H) == at(LONDON, 2026, 1, 13, 23)


def test_spring_forward_in_new_york_a_day_open_all_day_has_23_hours() -> None:
    calendar = BusinessCalendar.always_open("America/New_York")
    assert calendar.between(at(NY, 2026, 3, 8), at(NY, 2026, 3, 9)) == 23 * H
    assert calendar.add(at(NY, 2026, 3, 8, 1), H) == at(NY, 2026, 3, 8, 3)


def test_fall_back_in_new_york_a_day_open_all_day_has_25_hours() -> None:
    calendar = BusinessCalendar.always_open("America/New_York")
    assert calendar.between(at(NY, 2026, 11, 1), at(NY, 2026, 11, 2)) == 25 * H


def test_weekday_hours_keep_their_wall_times_across_the_change() -> None:
    # Friday 6 March is EST (UTC-5); Monday 9 March is EDT (UTC-4).
    due = new_york().add(at(NY, 2026, 3, 6, 16), 2 * H)
    assert due == at(NY, 2026, 3, 9, 10)
    assert due == datetime(2026, 3, 9, 14, tzinfo=UTC)


def test_an_open_span_starting_in_the_skipped_hour_opens_when_clocks_jump() -> None:
    sunday = {"sunday": "02:30-04:00"}
    calendar = calendar_from_text("America/New_York", sunday, ())
    spans = list(calendar.open_spans(at(NY, 2026, 3, 7), at(NY, 2026, 3, 9)))
    # 03:00 EDT is 07:00 UTC, 04:00 EDT is 08:00 UTC: one real hour.
    assert spans == [(datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 8, 8, tzinfo=UTC))]
    assert (
        calendar_from_text("America/New_York", {"sunday": "01:00-04:00"}, ()).between(
            at(NY, 2026, 3, 8), at(NY, 2026, 3, 9)
        )
        == 2 * H
    )


def test_london_spring_forward_and_fall_back() -> None:
    calendar = calendar_from_text("Europe/London", {"sunday": "00:30-03:00"}, ())
    # 29 March 2026: 01:00 GMT jumps to 02:00 BST, so 00:30-03:00 lasts 1.5 hours.
    assert calendar.between(at(LONDON, 2026, 3, 29), at(LONDON, 2026, 3, 30)) == 90 * timedelta(minutes=1)
    # 25 October 2026: 02:00 BST falls back to 01:00 GMT, so it lasts 3.5 hours, repeated hour counted once each.
    assert calendar.between(at(LONDON, 2026, 10, 25), at(LONDON, 2026, 10, 26)) == 210 * timedelta(minutes=1)
    repeated = calendar_from_text("Europe/London", {"sunday": "01:30-02:00"}, ())
    first, second = LONDON, LONDON
    spans = list(repeated.open_spans(at(first, 2026, 10, 25), at(second, 2026, 10, 26)))
    # The first 01:30 (BST, 00:30 UTC) to the second 02:00 (GMT, 02:00 UTC).
    assert spans == [(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC))]


def test_a_pending_pause_moves_the_due_time_by_the_business_time_it_covered() -> None:
    calendar = new_york()
    start = at(NY, 2026, 1, 12, 9)
    pending = (at(NY, 2026, 1, 12, 10), at(NY, 2026, 1, 12, 11, 30))
    assert calendar.add(start, 4 * H, [pending]) == at(NY, 2026, 1, 12, 14, 30)
    assert calendar.between(start, at(NY, 2026, 1, 12, 12), [pending]) == 90 * timedelta(minutes=1)


def test_a_pause_outside_open_hours_changes_nothing() -> None:
    calendar = new_york()
    start = at(NY, 2026, 1, 16, 16)
    weekend = (at(NY, 2026, 1, 16, 18), at(NY, 2026, 1, 19, 8))
    assert calendar.add(start, 2 * H, [weekend]) == calendar.add(start, 2 * H) == at(NY, 2026, 1, 19, 10)


def test_an_open_pause_stops_the_clock_until_the_customer_answers() -> None:
    calendar = new_york()
    start = at(NY, 2026, 1, 12, 9)
    waiting = (at(NY, 2026, 1, 12, 10), None)
    assert calendar.add(start, 4 * H, [waiting]) is None
    assert calendar.between(start, at(NY, 2026, 1, 14, 12), [waiting]) == H
    # Reached before the pause began: still due.
    assert calendar.add(start, 30 * timedelta(minutes=1), [waiting]) == at(NY, 2026, 1, 12, 9, 30)
    answered = (waiting[0], at(NY, 2026, 1, 13, 9, 15))
    assert calendar.add(start, 4 * H, [answered]) == at(NY, 2026, 1, 13, 12, 15)


def test_overlapping_pauses_are_not_subtracted_twice() -> None:
    calendar = new_york()
    start = at(NY, 2026, 1, 12, 9)
    pauses = [
        (at(NY, 2026, 1, 12, 10), at(NY, 2026, 1, 12, 12)),
        (at(NY, 2026, 1, 12, 11), at(NY, 2026, 1, 12, 13)),
    ]
    assert calendar.between(start, at(NY, 2026, 1, 12, 17), pauses) == 5 * H


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Asia/Shanghai"])
def test_adding_then_measuring_gives_back_the_amount(zone: str) -> None:
    hours = {"monday": "08:00-12:00, 13:00-18:00", "wednesday": "00:00-24:00", "saturday": "10:00-14:00"}
    calendar = calendar_from_text(zone, hours, (date(2026, 11, 4),))
    pauses = [(datetime(2026, 3, 9, 14, tzinfo=UTC), datetime(2026, 3, 11, 3, tzinfo=UTC))]
    start = datetime(2026, 2, 27, 5, 17, tzinfo=UTC)
    for step in range(0, 40 * 24 * 60, 4999):
        moment = start + timedelta(days=step // 60, minutes=step % 60)
        for minutes in (0, 1, 59, 241, 600, 3001):
            due = calendar.add_minutes(moment, minutes, pauses)
            assert due is not None
            assert calendar.minutes_between(moment, due, pauses) == minutes
            assert minutes == 0 or calendar.is_open(due - timedelta(seconds=1))


def test_measuring_backwards_is_zero() -> None:
    assert new_york().between(at(NY, 2026, 1, 13, 12), at(NY, 2026, 1, 13, 10)) == timedelta(0)


def test_bad_calendars_and_moments_are_refused() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        calendar_from_text("Mars/Olympus", WEEKDAYS_9_TO_5)
    with pytest.raises(InvalidInput, match="unknown weekdays"):
        calendar_from_text("UTC", {"funday": "09:00-17:00"})
    with pytest.raises(InvalidInput, match="no open hours"):
        calendar_from_text("UTC", {}).add(datetime(2026, 1, 1, tzinfo=UTC), H)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        new_york().add(datetime(2026, 1, 1), H)
    with pytest.raises(InvalidInput, match="negative"):
        new_york().add(datetime(2026, 1, 1, tzinfo=UTC), -H)


def test_a_calendar_closed_for_years_is_refused_instead_of_searched_forever() -> None:
    every_day = tuple(date(2026, 1, 1) + timedelta(days=d) for d in range(4 * 366))
    calendar = calendar_from_text("UTC", {"monday": "09:00-10:00"}, every_day)
    with pytest.raises(InvalidInput, match="closed for more than"):
        calendar.add(datetime(2026, 1, 1, tzinfo=UTC), H)


def test_weekly_text_is_the_config_form_and_reads_back() -> None:
    text = {"monday": "08:00-12:00, 13:00-24:00", "friday": "09:00-17:00"}
    calendar = calendar_from_text("Asia/Shanghai", text)
    assert calendar.weekly_text()["monday"] == "08:00-12:00, 13:00-24:00"
    assert calendar.weekly_text()["sunday"] == ""
    assert calendar_from_text("Asia/Shanghai", calendar.weekly_text()) == calendar
