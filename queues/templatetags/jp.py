"""Template filters of the console: times and durations as a person reads them."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.dateparse import parse_datetime

from queues.admin.common import human_duration, human_time

register = template.Library()


@register.filter(name="human_time")
def human_time_filter(value):
    """A datetime (or its ISO text, as the dashboard's data holds it): "3 minutes ago",
    the exact time in a tooltip."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return human_time(value) if isinstance(value, datetime) else "-"


@register.filter(name="human_duration")
def human_duration_filter(value):
    return human_duration(value)
