"""A job's attempts on one time axis, for its admin page: each attempt a bar (left offset
from the first attempt's start, width its duration, both in percent of the whole span),
the waits between attempts (backoff), and the log lines grouped under their attempt.

Pure Python over attempts and log lines already read (no query here), so the page's
query count stays fixed and the layout is unit-tested with fixed datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from queues.humanize import human_duration
from queues.models import Job, JobAttempt, JobStatus

# The newest log lines the page shows (one query, LIMIT LOG_LIMIT + 1 to know if more).
LOG_LIMIT = 500
# Log marks drawn on one attempt's bar; every line is still listed under the attempt.
MARKS_PER_BAR = 100
# An error longer than this (or of more than one line) is cut in the row, whole below it.
ERROR_LINE = 120
# The outcome of the attempt a worker is running now (it has no attempt row yet).
RUNNING = "running"

# Tick steps of the axis, in ms: the smallest one that needs at most MAX_TICKS intervals.
TICK_STEPS_MS = [
    *(m * 10**e for e in range(3) for m in (1, 2, 5)),  # 1 ms .. 500 ms
    *(s * 1000 for s in (1, 2, 5, 10, 15, 30)),
    *(m * 60_000 for m in (1, 2, 5, 10, 15, 30)),
    *(h * 3_600_000 for h in (1, 2, 3, 6, 12)),
    *(d * 86_400_000 for d in (1, 2, 7, 14, 30)),
]
MAX_TICKS = 5

# A level a handler wrote at the start of its line ("WARNING: ...", "[error] ..."):
# JobLog has no level column, ctx.log takes a message only.
_LEVEL = re.compile(r"^\s*\[?(debug|info|warn|warning|error|critical)\]?(?:\s*:\s*|\s+)", re.I)
_LEVEL_NAMES = {"warn": "warning"}


def clock_ms(value: datetime) -> str:
    """``value`` in local time to the millisecond: ``20:25:03.412``."""
    return timezone.localtime(value).strftime("%H:%M:%S.%f")[:-3]


def clock_html(value: datetime | None):
    """``<time>`` showing :func:`clock_ms` (attempts seconds apart must not look
    simultaneous); the date and zone in its tooltip."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " " + local.strftime("%Z"),
        clock_ms(value),
    )


def percent_css(value: float) -> str:
    """A percentage for an inline style, whatever the locale's decimal separator."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "%"


@dataclass(frozen=True)
class LogLine:
    at: datetime
    attempt: int
    level: str  # debug, info, warning, error or critical
    message: str
    offset_pct: float = 0.0

    @property
    def left(self) -> str:
        return percent_css(self.offset_pct)


class OnTheAxis:
    """Where a span sits on the time axis, as inline-style percentages."""

    offset_pct: float
    width_pct: float

    @property
    def left(self) -> str:
        return percent_css(self.offset_pct)

    @property
    def width(self) -> str:
        return percent_css(self.width_pct)


@dataclass(frozen=True)
class Gap(OnTheAxis):
    """The wait between the end of one attempt and the start of the next."""

    start: datetime
    end: datetime
    offset_pct: float
    width_pct: float

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def label(self) -> str:
        return _("waited %(duration)s") % {"duration": human_duration(self.duration)}


@dataclass(frozen=True)
class Bar(OnTheAxis):
    number: int
    outcome: str  # an AttemptOutcome value, or RUNNING
    outcome_label: str
    worker: str
    started_at: datetime
    finished_at: datetime | None
    duration: timedelta | None
    error: str
    traceback: str
    offset_pct: float
    width_pct: float
    gap_before: Gap | None = None
    logs: list[LogLine] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.outcome == RUNNING

    @property
    def error_line(self) -> str:
        lines = self.error.strip().splitlines()
        line = lines[0] if lines else ""
        return line if len(line) <= ERROR_LINE else line[: ERROR_LINE - 1] + "…"

    @property
    def error_is_cut(self) -> bool:
        return self.error_line != self.error.strip()

    @property
    def duration_text(self) -> str:
        if self.duration is None:
            return "-"
        text = human_duration(self.duration)
        return _("%(duration)s so far") % {"duration": text} if self.running else text

    @property
    def marks(self) -> list[LogLine]:
        return self.logs[:MARKS_PER_BAR]


@dataclass(frozen=True)
class Tick:
    offset_pct: float
    label: str

    @property
    def left(self) -> str:
        return percent_css(self.offset_pct)


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    ticks: list[Tick]
    origin: datetime | None
    span: timedelta
    other_logs: list[LogLine]  # lines of no attempt shown (their attempt row is gone)
    logs_cut: bool = False  # only the newest LOG_LIMIT lines were read

    @property
    def gaps(self) -> list[Gap]:
        return [bar.gap_before for bar in self.bars if bar.gap_before]


def running_attempt(job: Job, history: Sequence[JobAttempt]) -> JobAttempt | None:
    """The attempt an active job's worker runs now, unsaved: its row is written when it
    ends, its start and worker are on the job's row."""
    last = max((a.number for a in history), default=0)
    if job.status != JobStatus.ACTIVE or not job.started_at or job.attempts_made <= last:
        return None
    return JobAttempt(
        job=job, number=job.attempts_made, worker=job.worker, started_at=job.started_at
    )


def log_level(message: str) -> tuple[str, str]:
    """(level, message without it): the level a line starts with, else ``info``."""
    match = _LEVEL.match(message)
    if not match:
        return "info", message
    level = match.group(1).lower()
    return _LEVEL_NAMES.get(level, level), message[match.end() :]


def _is_running(attempt: JobAttempt) -> bool:
    # running_attempt()'s: unsaved and without an outcome.
    return attempt.pk is None and not attempt.outcome


def _attempt_end(attempt: JobAttempt, now: datetime) -> datetime:
    if attempt.finished_at is not None:
        return max(attempt.finished_at, attempt.started_at)
    if attempt.duration_ms is not None:
        return attempt.started_at + timedelta(milliseconds=attempt.duration_ms)
    return max(now, attempt.started_at) if _is_running(attempt) else attempt.started_at


def _duration(attempt: JobAttempt, end: datetime) -> timedelta | None:
    if attempt.duration_ms is not None:
        return timedelta(milliseconds=attempt.duration_ms)
    if attempt.finished_at is not None or _is_running(attempt):
        return end - attempt.started_at
    return None


def _tick_step(span_ms: float) -> int:
    for step in TICK_STEPS_MS:
        if span_ms / step <= MAX_TICKS:
            return step
    return TICK_STEPS_MS[-1]


def _ticks(span: timedelta) -> list[Tick]:
    span_ms = span / timedelta(milliseconds=1)
    if span_ms <= 0:
        return [Tick(0.0, "0")]
    step = _tick_step(span_ms)
    count = int(span_ms // step)
    return [
        Tick(i * step / span_ms * 100, "+" + human_duration(timedelta(milliseconds=i * step)))
        if i
        else Tick(0.0, "0")
        for i in range(count + 1)
    ]


def build_timeline(
    attempts: Sequence[JobAttempt],
    logs: Sequence = (),
    *,
    now: datetime | None = None,
    logs_cut: bool = False,
) -> Timeline:
    """The bars of ``attempts`` (saved rows, the unsaved completing attempt of
    ``Job.attempt_history()`` and the unsaved running one of :func:`running_attempt`,
    which ends at ``now``), on one axis from the first start to the last end; ``logs``
    (objects with ``attempt``, ``created_at``, ``message``) grouped under their attempt
    by number, or by time when their number has no attempt."""
    now = now or timezone.now()
    attempts = sorted(attempts, key=lambda a: (a.started_at, a.number))
    if not attempts:
        lines = [_log_line(row, lambda moment: 0.0) for row in logs]
        return Timeline([], [], None, timedelta(0), lines, logs_cut)
    ends = [_attempt_end(a, now) for a in attempts]
    origin = attempts[0].started_at
    span = max(ends) - origin

    def pct(moment: datetime) -> float:
        if span <= timedelta(0):
            return 0.0
        return min(max((moment - origin) / span * 100, 0.0), 100.0)

    bars: list[Bar] = []
    latest_end = None
    for attempt, end in zip(attempts, ends, strict=True):
        gap = None
        if latest_end is not None and attempt.started_at > latest_end:
            left = pct(latest_end)
            gap = Gap(latest_end, attempt.started_at, left, pct(attempt.started_at) - left)
        latest_end = end if latest_end is None else max(latest_end, end)
        running = _is_running(attempt)
        left = pct(attempt.started_at)
        bars.append(
            Bar(
                number=attempt.number,
                outcome=RUNNING if running else attempt.outcome,
                outcome_label=_("Running") if running else attempt.get_outcome_display(),
                worker=attempt.worker,
                started_at=attempt.started_at,
                finished_at=attempt.finished_at,
                duration=_duration(attempt, end),
                error=attempt.error,
                traceback=attempt.traceback,
                offset_pct=left,
                width_pct=pct(end) - left,
                gap_before=gap,
            )
        )

    by_number = {bar.number: bar for bar in bars}
    other: list[LogLine] = []
    for row in logs:
        bar = by_number.get(row.attempt)
        if bar is None:  # its attempt row is gone: the attempt that ran at that moment
            bar = next(
                (
                    b
                    for b, end in zip(bars, ends, strict=True)
                    if b.started_at <= row.created_at <= end
                ),
                None,
            )
        line = _log_line(row, pct)
        (bar.logs if bar is not None else other).append(line)
    return Timeline(bars, _ticks(span), origin, span, other, logs_cut)


def _log_line(row, pct) -> LogLine:
    level, message = log_level(row.message)
    return LogLine(row.created_at, row.attempt, level, message, pct(row.created_at))
