"""Times and durations as a person reads them ("3 minutes ago", "4.2 s"), for every
page of the console and the dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _


def human_time(value: datetime | None, now: datetime | None = None):
    """ "3 minutes ago" (or "in 5 minutes"), with the exact local time, to the second, in
    a tooltip and in the ``datetime`` attribute."""
    if value is None:
        return "-"
    now = now or timezone.now()
    local = timezone.localtime(value)
    exact = formats.date_format(local, "Y-m-d H:i:s T")
    seconds = (now - value).total_seconds()
    if abs(seconds) < 1:
        text = _("just now")
    elif 0 < seconds < 60:
        text = _("%(n)d s ago") % {"n": seconds}
    elif -60 < seconds < 0:
        text = _("in %(n)d s") % {"n": -seconds}
    elif value <= now:
        text = _("%(span)s ago") % {"span": timesince(value, now, depth=1)}
    else:
        text = _("in %(span)s") % {"span": timeuntil(value, now, depth=1)}
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, text)


def human_duration(span: timedelta | float | None) -> str:
    """A duration as a person reads it: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min."""
    if span is None:
        return "-"
    seconds = span.total_seconds() if isinstance(span, timedelta) else float(span)
    if seconds < 1:
        return _("%(n)d ms") % {"n": round(seconds * 1000)}
    if seconds < 60:
        return _("%(n).1f s") % {"n": seconds}
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return _("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
