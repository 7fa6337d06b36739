"""Cron parsing and next-run math, with an explicit clock."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduling.cron import (
    ScheduleError,
    describe,
    describe_interval,
    get_zone,
    next_after,
    parse_cron,
)

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "normalized"),
    [
        ("0 2 * * *", "0 2 * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 0 2 * * *", "0 2 * * *"),  # six fields: seconds first
        ("0 */30 * * * *", "*/30 * * * *"),
        ("00 0 9 * * 1-5", "0 9 * * 1-5"),
        ("  0   9 * *   mon-fri ", "0 9 * * mon-fri"),
    ],
)
def test_parse_accepts_5_fields_and_6_with_zero_seconds(expression, normalized):
    assert parse_cron(expression) == normalized


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("*/10 * * * * *", "only 0 is accepted.*interval schedule"),
        ("30 0 2 * * *", "only 0 is accepted.*interval schedule"),
        ("61 * * * *", "invalid minute field '61'"),
        ("0 25 * * *", "invalid hour field '25'"),
        ("0 0 32 * *", "invalid day of month field '32'"),
        ("0 0 * 13 *", "invalid month field '13'"),
        ("0 0 * * funday", "invalid day of week field 'funday'"),
        ("* * * *", "has 4 fields"),
        ("", "cron expression is required"),
    ],
)
def test_parse_refuses_with_a_clear_reason(expression, message):
    with pytest.raises(ScheduleError, match=message):
        parse_cron(expression)


def test_unknown_time_zone_is_refused():
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        get_zone("Mars/Olympus")
    assert get_zone("Asia/Shanghai") == SHANGHAI


def test_next_after_uses_the_schedule_zone():
    # 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before.
    assert next_after("0 2 * * *", SHANGHAI, utc(2026, 11, 23, 12, 0)) == utc(2026, 11, 23, 18, 0)
    assert next_after("0 2 * * *", SHANGHAI, utc(2026, 11, 23, 18, 0)) == utc(2026, 11, 24, 18, 0)


def daily_runs(expression, zone, start, count):
    runs, cursor = [], start
    for _ in range(count):
        cursor = next_after(expression, zone, cursor)
        runs.append(cursor)
    return runs


def test_fall_back_a_repeated_time_fires_once():
    # Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET, so 02:30 happens twice.
    runs = daily_runs("30 2 * * *", BERLIN, utc(2026, 10, 23, 12), 4)
    local = [r.astimezone(BERLIN) for r in runs]
    assert [d.date().isoformat() for d in local] == [
        "2026-10-24",
        "2026-10-25",
        "2026-10-26",
        "2026-10-27",
    ]
    assert all((d.hour, d.minute) == (2, 30) for d in local)
    # On the day itself it fires at the first 02:30 (CEST, 00:30 UTC), not again at 01:30 UTC.
    assert runs[1] == utc(2026, 10, 25, 0, 30)


def test_spring_forward_a_skipped_time_fires_once_moved_later_by_the_gap():
    # Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST, so 02:30 does not exist that day.
    runs = daily_runs("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), 4)
    local = [r.astimezone(BERLIN) for r in runs]
    assert [d.date().isoformat() for d in local] == [
        "2026-03-28",
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
    ]
    assert (local[1].hour, local[1].minute) == (3, 30)
    assert runs[1] == utc(2026, 3, 29, 1, 30)
    assert len(set(runs)) == 4


def test_hourly_across_both_transitions_never_repeats_an_instant():
    spring = daily_runs("30 * * * *", BERLIN, utc(2026, 3, 28, 22), 8)
    autumn = daily_runs("30 * * * *", BERLIN, utc(2026, 10, 24, 21), 8)
    for runs in (spring, autumn):
        assert runs == sorted(set(runs))


def test_never_firing_expression_is_an_error():
    with pytest.raises(ScheduleError, match="never fires"):
        next_after("0 0 30 2 *", BERLIN, utc(2026, 1, 1))


def test_describe_reads_like_beat_admin():
    assert describe("0 2 * * *") == "At 02:00"
    assert "Monday through Friday" in describe("0 9 * * 1-5")


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("0 2 * * *", "At 02:00"),
        ("0 0 2 * * *", "At 02:00"),
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 9 * * mon-fri", "At 09:00, Monday through Friday"),
        ("5 4 * * sun", "At 04:05, only on Sunday"),
        ("0 0 * * 6,0", "At 00:00, only on Saturday and Sunday"),
        ("0 8,20 * * *", "At 08:00 and 20:00"),
        ("30 8 1 * *", "At 08:30, on day 1 of the month"),
        ("0 0 1,15 * *", "At 00:00, on days 1 and 15 of the month"),
        ("0 0 L * *", "At 00:00, on the last day of the month"),
        ("0 9 1 * 1", "At 09:00, on day 1 of the month or on Monday"),
        (
            "0 0 1 */3 *",
            "At 00:00, on day 1 of the month, only in January, April, July and October",
        ),
        ("* * * * *", "Every minute"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0,30 * * * *", "Every 30 minutes"),
        ("0 * * * *", "Every hour"),
        ("0 */2 * * *", "Every 2 hours"),
        ("5 * * * *", "At minute 5, every hour"),
        ("15,45 */6 * * *", "At minutes 15 and 45, every 6 hours"),
        ("*/15 9-17 * * 1-5", "Every 15 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("*/5 1,3,5 * * *", "Every 5 minutes, during hours 1, 3 and 5"),
        # What the describer does not put into words is shown as written.
        ("0 0 * * 5#2", "0 0 * * 5#2"),
        ("not cron", "not cron"),
    ],
)
def test_describe_in_plain_english(expression, text):
    assert describe(expression) == text


def test_describe_uses_the_active_language_for_day_and_month_names():
    from django.utils import translation

    with translation.override("zh-hans"):
        weekdays = describe("0 9 * * 1-5")
        months = describe("0 0 1 1,7 *")
    assert "星期一" in weekdays and "星期五" in weekdays and "Monday" not in weekdays
    assert "一月" in months and "七月" in months


@pytest.mark.parametrize(
    ("every", "period", "text"),
    [
        (1, "seconds", "Every second"),
        (10, "seconds", "Every 10 seconds"),
        (1, "minutes", "Every minute"),
        (90, "minutes", "Every 90 minutes"),
        (1, "hours", "Every hour"),
        (6, "hours", "Every 6 hours"),
        (1, "days", "Every day"),
        (2, "days", "Every 2 days"),
    ],
)
def test_describe_interval(every, period, text):
    assert describe_interval(every, period) == text
