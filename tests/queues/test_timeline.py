"""queues/admin/timeline.py: a job's attempts as bars on one time axis, the waits between
them, their log lines, times to the millisecond. Fixed datetimes, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone, translation

from queues.admin import timeline
from queues.admin.timeline import build_timeline, clock_html, clock_ms, log_level, percent_css
from queues.models import AttemptOutcome, Job, JobAttempt, JobStatus

T0 = datetime(2026, 12, 4, 20, 25, 3, 412_000, tzinfo=UTC)


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


def attempt(number, start_ms, duration_ms, outcome=AttemptOutcome.FAILED, **fields):
    started = T0 + ms(start_ms)
    finished = None if duration_ms is None else started + ms(duration_ms)
    row = JobAttempt(
        number=number,
        started_at=started,
        finished_at=finished,
        duration_ms=duration_ms,
        outcome=outcome,
        worker=fields.pop("worker", "host:1"),
        **fields,
    )
    row.pk = number  # a saved row (running_attempt's is the unsaved one without outcome)
    return row


def log(attempt_number, at_ms, message):
    return SimpleNamespace(attempt=attempt_number, created_at=T0 + ms(at_ms), message=message)


@pytest.fixture(autouse=True)
def _english_utc():
    with translation.override("en"), timezone.override(UTC):
        yield


def three_attempts():
    """Starts 2 s then 4 s apart: 412 ms, 1.5 s and 250 ms long."""
    return [
        attempt(1, 0, 412, error="ConnectionError: try 1", traceback="Traceback ...\nboom"),
        attempt(2, 2000, 1500, AttemptOutcome.TIMEOUT, error="timed out"),
        attempt(3, 6000, 250, AttemptOutcome.COMPLETED),
    ]


def test_bars_are_placed_on_one_axis_from_the_first_start_to_the_last_end():
    line = build_timeline(three_attempts(), now=T0 + ms(60_000))
    assert line.origin == T0
    assert line.span == ms(6250)
    assert [(b.number, b.outcome) for b in line.bars] == [
        (1, "failed"),
        (2, "timeout"),
        (3, "completed"),
    ]
    assert [round(b.offset_pct, 3) for b in line.bars] == [0.0, 32.0, 96.0]
    assert [round(b.width_pct, 3) for b in line.bars] == [6.592, 24.0, 4.0]
    assert [b.left for b in line.bars] == ["0%", "32%", "96%"]
    assert [b.width for b in line.bars] == ["6.592%", "24%", "4%"]
    assert [b.duration_text for b in line.bars] == ["412 ms", "1.5 s", "250 ms"]
    assert [b.outcome_label for b in line.bars] == ["Failed", "Timeout", "Completed"]


def test_the_waits_between_attempts_are_gaps_on_the_axis():
    line = build_timeline(three_attempts())
    assert line.bars[0].gap_before is None
    first, second = line.gaps
    assert (first.start, first.end) == (T0 + ms(412), T0 + ms(2000))
    assert first.duration == ms(1588)
    assert (round(first.offset_pct, 3), round(first.width_pct, 3)) == (6.592, 25.408)
    assert first.label == "waited 1.6 s"
    assert (second.start, second.end) == (T0 + ms(3500), T0 + ms(6000))
    assert (round(second.offset_pct, 3), round(second.width_pct, 3)) == (56.0, 40.0)
    assert second.label == "waited 2.5 s"


def test_a_wait_is_one_translatable_sentence(monkeypatch):
    # The whole sentence goes to the catalog, with the duration as a placeholder: a
    # language puts the words around it where it needs them.
    catalog = {"waited %(duration)s": "等待 %(duration)s", "%(n).1f s": "%(n).1f 秒"}
    monkeypatch.setattr(timeline, "_", lambda text: catalog.get(text, text))
    monkeypatch.setattr("queues.humanize._", lambda text: catalog.get(text, text))
    first, _second = build_timeline(three_attempts()).gaps
    assert first.label == "等待 1.6 秒"


def test_overlapping_attempts_have_no_gap_and_a_wait_counts_from_the_latest_end():
    # Attempt 2 was discarded late: it ran past the start of attempt 3.
    rows = [attempt(1, 0, 100), attempt(2, 200, 1000), attempt(3, 500, 100), attempt(4, 1500, 100)]
    line = build_timeline(rows)
    assert [b.gap_before and (b.gap_before.start, b.gap_before.end) for b in line.bars] == [
        None,
        (T0 + ms(100), T0 + ms(200)),
        None,
        (T0 + ms(1200), T0 + ms(1500)),
    ]


def test_one_instant_attempt_has_zero_width_and_one_tick():
    line = build_timeline([attempt(1, 0, 0, AttemptOutcome.COMPLETED)])
    assert line.span == timedelta(0)
    assert (line.bars[0].offset_pct, line.bars[0].width_pct) == (0.0, 0.0)
    assert [(t.offset_pct, t.label) for t in line.ticks] == [(0.0, "0")]


def test_ticks_are_round_steps_of_the_span():
    line = build_timeline(three_attempts())  # 6.25 s: steps of 2 s
    assert [(t.left, t.label) for t in line.ticks] == [
        ("0%", "0"),
        ("32%", "+2.0 s"),
        ("64%", "+4.0 s"),
        ("96%", "+6.0 s"),
    ]
    short = build_timeline([attempt(1, 0, 412)])  # 412 ms: steps of 100 ms
    assert [t.label for t in short.ticks] == ["0", "+100 ms", "+200 ms", "+300 ms", "+400 ms"]
    hours = build_timeline([attempt(1, 0, 100), attempt(2, 3 * 3_600_000, 100)])
    assert [t.label for t in hours.ticks] == ["0", "+1 h 0 min", "+2 h 0 min", "+3 h 0 min"]


def test_logs_are_grouped_under_their_attempt_by_number_then_by_time():
    logs = [
        log(1, 100, "validating"),
        log(2, 2500, "WARNING: slow upstream"),
        log(2, 3000, "[error] upstream 503"),
        log(3, 6200, "done"),
        log(9, 2100, "a line of a gone attempt, written while attempt 2 ran"),
        log(9, 4000, "a line between attempts"),
    ]
    line = build_timeline(three_attempts(), logs)
    grouped = {b.number: [(x.level, x.message) for x in b.logs] for b in line.bars}
    assert grouped == {
        1: [("info", "validating")],
        2: [
            ("warning", "slow upstream"),
            ("error", "upstream 503"),
            ("info", "a line of a gone attempt, written while attempt 2 ran"),
        ],
        3: [("info", "done")],
    }
    assert [(x.attempt, x.message) for x in line.other_logs] == [(9, "a line between attempts")]
    assert [x.left for x in line.bars[1].logs] == ["40%", "48%", "33.6%"]
    assert line.bars[0].logs[0].at == T0 + ms(100)


def test_logs_without_attempts_are_kept():
    line = build_timeline([], [log(1, 0, "queued")], logs_cut=True)
    assert line.bars == [] and line.logs_cut is True
    assert [x.message for x in line.other_logs] == ["queued"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("sending via twilio", ("info", "sending via twilio")),
        ("WARNING: retrying", ("warning", "retrying")),
        ("warn retrying", ("warning", "retrying")),
        ("[ERROR] boom", ("error", "boom")),
        ("Critical: disk full", ("critical", "disk full")),
        ("debug: x=1", ("debug", "x=1")),
        ("[50%] step two", ("info", "[50%] step two")),
        ("errors: 0", ("info", "errors: 0")),
    ],
)
def test_a_level_at_the_start_of_a_line(message, expected):
    assert log_level(message) == expected


def test_the_running_attempt_of_an_active_job_ends_now():
    job = Job(
        status=JobStatus.ACTIVE,
        attempts_made=2,
        worker="host:7",
        started_at=T0 + ms(3000),
        progress=40,
    )
    history = [attempt(1, 0, 500)]
    running = timeline.running_attempt(job, history)
    assert (running.number, running.worker, running.started_at) == (2, "host:7", T0 + ms(3000))
    line = build_timeline([*history, running], now=T0 + ms(4000))
    bar = line.bars[1]
    assert (bar.running, bar.outcome, bar.outcome_label) == (True, "running", "Running")
    assert (bar.offset_pct, bar.width_pct) == (75.0, 25.0)
    assert bar.duration_text == "1.0 s so far"
    # Not while it waits, nor once its attempt row exists.
    job.status = JobStatus.DELAYED
    assert timeline.running_attempt(job, history) is None
    job.status = JobStatus.ACTIVE
    assert timeline.running_attempt(job, [*history, attempt(2, 3000, 10)]) is None


def test_an_attempt_without_an_end_is_a_mark_at_its_start():
    line = build_timeline([attempt(1, 0, 1000), attempt(2, 2000, None, AttemptOutcome.STALLED)])
    assert (line.bars[1].offset_pct, line.bars[1].width_pct) == (100.0, 0.0)
    assert line.bars[1].duration_text == "-"


def test_errors_are_cut_to_their_first_line():
    rows = [
        attempt(1, 0, 10, error="short"),
        attempt(2, 20, 10, error="first line\nsecond line"),
        attempt(3, 40, 10, error="x" * 200),
    ]
    bars = build_timeline(rows).bars
    assert [(b.error_line, b.error_is_cut) for b in bars[:2]] == [
        ("short", False),
        ("first line", True),
    ]
    assert len(bars[2].error_line) == timeline.ERROR_LINE and bars[2].error_line.endswith("…")


def test_times_to_the_millisecond_in_local_time():
    assert clock_ms(T0) == "20:25:03.412"
    assert clock_ms(T0 + ms(2001)) == "20:25:05.413"
    with timezone.override(ZoneInfo("Asia/Shanghai")):
        assert clock_ms(T0) == "04:25:03.412"
        html = clock_html(T0)
    assert html == (
        '<time datetime="2026-12-04T20:25:03.412000+00:00" '
        'title="2026-12-05 04:25:03.412 CST">04:25:03.412</time>'
    )
    assert clock_html(None) == "-"


def test_percentages_are_css_whatever_the_locale():
    assert [percent_css(v) for v in (0, 12.5, 100 / 3, 100)] == [
        "0%",
        "12.5%",
        "33.333%",
        "100%",
    ]
    with translation.override("de"):  # a comma as decimal separator
        assert percent_css(12.5) == "12.5%"


def test_the_templatetags_take_datetimes_or_their_iso_text():
    from queues.templatetags.jp import clock_ms_filter, clock_ms_text_filter, human_time_filter

    assert clock_ms_text_filter(T0) == clock_ms_text_filter(T0.isoformat()) == "20:25:03.412"
    assert clock_ms_filter(T0.isoformat()) == clock_html(T0)
    assert clock_ms_filter(None) == clock_ms_text_filter("not a time") == "-"
    assert human_time_filter(None) == "-"
    three_minutes_ago = (timezone.now() - timedelta(minutes=3, seconds=1)).isoformat()
    assert ">3\xa0minutes ago</time>" in human_time_filter(three_minutes_ago)
