"""Per-handler metrics in the admin: runs, failures, failure rate and duration percentiles
over the last 1, 24 or 72 hours, with a bar chart of the last 72 hours per handler.

Everything comes from ``HandlerHour`` buckets (three queries, whatever the number of
handlers); a page view never reads the jobs table. A window of N hours takes every hour
bucket that overlaps the last N hours, so it may reach up to an hour further back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import BigIntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from queues.humanize import human_duration
from queues.metrics import DURATION_BINS_MS, HANDLER_HOURS_KEEP, percentile_from_histogram
from queues.models import HandlerHour
from queues.selectors import bucket_rates

# The window selector's choices (the ``window`` URL parameter) and their labels.
WINDOWS = {
    "1h": (1, gettext_lazy("1 h")),
    "24h": (24, gettext_lazy("24 h")),
    "72h": (72, gettext_lazy("72 h")),
}
DEFAULT_WINDOW = "24h"
CHART_HOURS = int(HANDLER_HOURS_KEEP / timedelta(hours=1))
# The chart's geometry (SVG user units): one bar per hour, the current one last.
BAR_WIDTH, BAR_GAP, CHART_HEIGHT = 4, 1, 40
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def window_start(now: datetime, hours: int) -> datetime:
    """The first hour bucket overlapping the last ``hours`` hours."""
    return (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


@dataclass
class HandlerRow:
    name: str
    queues: set[str] = field(default_factory=set)
    completed: int = 0
    failed: int = 0
    retried: int = 0
    duration_ms: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BINS_MS) + 1))
    # Per hour of the chart, oldest first: [runs, failures].
    hours: list[list[int]] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.completed + self.failed + self.retried

    @property
    def failures(self) -> int:
        # As on the dashboard: a retried try failed too.
        return self.failed + self.retried

    def rates(self) -> dict:
        return bucket_rates(
            completed=self.completed,
            failed=self.failed,
            retried=self.retried,
            ms=self.duration_ms,
        )

    def percentile_ms(self, q: float) -> int | None:
        """The upper bound of the bin holding the q-th quantile; None without data, and
        -1 when it lies in the open-ended last bin (past the last bound)."""
        if not sum(self.histogram):
            return None
        bound = percentile_from_histogram(self.histogram, q)
        return -1 if bound is None else bound


def handler_metrics(*, window: str, now: datetime) -> dict:
    """Per-handler totals over ``window`` (a key of WINDOWS) and the 72 h chart, sorted by
    runs in the window (then by name). Three grouped queries over ``handler_hour_hour_idx``."""
    hours, _label = WINDOWS[window]
    since = window_start(now, hours)
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    chart_start = window_start(now, CHART_HOURS)
    chart_hours = [chart_start + timedelta(hours=i) for i in range(CHART_HOURS + 1)]
    slot = {hour: i for i, hour in enumerate(chart_hours)}
    rows: dict[str, HandlerRow] = {}

    def row_of(name: str) -> HandlerRow:
        if name not in rows:
            rows[name] = HandlerRow(name=name, hours=[[0, 0] for _ in chart_hours])
        return rows[name]

    # Summed in the database, per handler and hour (the chart and the window's counters)
    # and per handler (the window's histogram): a row per queue, handler and hour costs
    # more to turn into Python objects than to add up.
    charted = HandlerHour.objects.filter(hour__gte=chart_start, hour__lte=hour0)
    windowed = charted.filter(hour__gte=since)
    per_hour = charted.values_list("name", "hour").annotate(
        Sum("completed"), Sum("failed"), Sum("retried"), Sum("duration_ms_sum")
    )
    for name, hour, completed, failed, retried, ms in per_hour.order_by():
        row = row_of(name)
        bar = row.hours[slot[hour]]
        bar[0] += completed + failed + retried
        bar[1] += failed + retried
        if hour >= since:
            row.completed += completed
            row.failed += failed
            row.retried += retried
            row.duration_ms += ms
    bins = {
        f"bin{i}": Sum(Cast(KeyTextTransform(str(i), "histogram"), BigIntegerField()))
        for i in range(len(DURATION_BINS_MS) + 1)
    }
    for name, *counts in windowed.values_list("name").annotate(**bins).order_by():
        row_of(name).histogram = [n or 0 for n in counts]
    for name, queue in windowed.values_list("name", "queue__name").distinct().order_by():
        row_of(name).queues.add(queue)
    ordered = sorted(rows.values(), key=lambda r: (-r.runs, r.name))
    return {
        "since": since,
        "chart_start": chart_start,
        "chart_hours": chart_hours,
        "window_first_bar": slot[since],
        "handlers": ordered,
    }


def format_percentile(ms: int | None) -> str:
    """A percentile as the histogram knows it: "≤ 50 ms", "> 1 min 0 s", or "-"."""
    if ms is None:
        return "-"
    if ms < 0:
        return _("> %(duration)s") % {"duration": human_duration(DURATION_BINS_MS[-1] / 1000)}
    return _("≤ %(duration)s") % {"duration": human_duration(ms / 1000)}


def _chart(row: HandlerRow, chart_hours: list[datetime], first_bar: int) -> dict:
    """Bar geometry of one handler's chart: runs (full bar) and failures (from the
    bottom), scaled to its busiest hour; the selected window is shaded behind."""
    peak = max((runs for runs, _failures in row.hours), default=0) or 1
    step = BAR_WIDTH + BAR_GAP
    # The bars as one SVG string: 73 bars per handler through the template language cost
    # more than the page's query.
    title = _("%(hour)s · runs: %(runs)s · failures: %(failures)s")
    parts = []
    for i, (hour, (runs, failures)) in enumerate(zip(chart_hours, row.hours, strict=True)):
        if not runs:
            continue
        x = i * step
        run_h = round(CHART_HEIGHT * runs / peak, 1)
        text = title % {
            "hour": date_format(timezone.localtime(hour), "SHORT_DATETIME_FORMAT"),
            "runs": runs,
            "failures": failures,
        }
        parts.append(
            f'<g><title>{escape(text)}</title><rect class="jp-spark-runs" x="{x}" '
            f'y="{CHART_HEIGHT - run_h}" width="{BAR_WIDTH}" height="{run_h}"></rect>'
        )
        if failures:
            fail_h = round(CHART_HEIGHT * failures / peak, 1)
            parts.append(
                f'<rect class="jp-spark-failures" x="{x}" y="{CHART_HEIGHT - fail_h}" '
                f'width="{BAR_WIDTH}" height="{fail_h}"></rect>'
            )
        parts.append("</g>")
    return {
        "bars_svg": mark_safe("".join(parts)),  # noqa: S308 - numbers and escaped titles
        "bar_width": BAR_WIDTH,
        "width": len(chart_hours) * step - BAR_GAP,
        "height": CHART_HEIGHT,
        "window_x": first_bar * step,
        "window_w": (len(chart_hours) - first_bar) * step - BAR_GAP,
        "peak": peak if any(runs for runs, _f in row.hours) else 0,
    }


def _display_row(row: HandlerRow, changelist: str, data: dict) -> dict:
    rates = row.rates()
    return {
        "name": row.name,
        "queues": sorted(row.queues),
        "runs": row.runs,
        "failures": row.failures,
        "failed": row.failed,
        "retried": row.retried,
        "failure_pct": rates["failure_rate"] * 100 if row.runs else None,
        "average": human_duration(rates["average_ms"] / 1000) if row.runs else "-",
        "percentiles": [(key, format_percentile(row.percentile_ms(q))) for key, q in PERCENTILES],
        "jobs_url": f"{changelist}?{urlencode({'name': row.name})}",
        "failed_url": f"{changelist}?{urlencode({'name': row.name, 'status__exact': 'failed'})}",
        "chart": _chart(row, data["chart_hours"], data["window_first_bar"]),
    }


@staff_member_required
def handler_metrics_view(request):
    """The per-handler metrics page; ``?window=1h|24h|72h`` (24 h by default)."""
    window = request.GET.get("window")
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    data = handler_metrics(window=window, now=timezone.now())
    changelist = reverse("admin:queues_job_changelist")
    context = {
        **admin.site.each_context(request),
        "title": _("Handler metrics"),
        "window": window,
        "window_label": WINDOWS[window][1],
        "windows": [(key, label) for key, (_hours, label) in WINDOWS.items()],
        "since": data["since"],
        "chart_start": data["chart_start"],
        "percentile_names": [key for key, _q in PERCENTILES],
        "handlers": [_display_row(row, changelist, data) for row in data["handlers"]],
        "any_runs": any(row.runs for row in data["handlers"]),
    }
    return render(request, "admin/queues/handlers.html", context)
