"""Template filters of the console: times and durations as a person reads them."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.dateparse import parse_datetime

from queues.admin.timeline import clock_html, clock_ms
from queues.humanize import human_duration, human_time

register = template.Library()


def _as_datetime(value):
    # A datetime, or its ISO text (as the dashboard's data holds it).
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if isinstance(value, datetime) else None


@register.filter(name="human_time")
def human_time_filter(value):
    """A datetime (or its ISO text, as the dashboard's data holds it): "3 minutes ago",
    the exact time in a tooltip."""
    value = _as_datetime(value)
    return human_time(value) if value else "-"


@register.filter(name="human_duration")
def human_duration_filter(value):
    return human_duration(value)


@register.filter(name="clock_ms")
def clock_ms_filter(value):
    """A datetime as local time to the millisecond (20:25:03.412) in a ``<time>``, the
    date and zone in its tooltip."""
    value = _as_datetime(value)
    return clock_html(value) if value else "-"


@register.filter(name="clock_ms_text")
def clock_ms_text_filter(value):
    """The same as plain text, for a ``title``."""
    value = _as_datetime(value)
    return clock_ms(value) if value else "-"
