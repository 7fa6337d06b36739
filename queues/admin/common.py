"""Pieces shared by the queues admin pages."""

from __future__ import annotations

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.utils.html import format_html

# Every JobStatus; other apps pass their own map for their models' statuses.
STATUS_COLORS = {
    "waiting": "#417690",
    "delayed": "#8a6d3b",
    "blocked": "#7a5ea8",
    "active": "#2b7bb9",
    "completed": "#2e7d32",
    "failed": "#ba2121",
    "cancelled": "#777",
}


class CappedPaginator(Paginator):
    """Counts at most CAP rows: a changelist over a million jobs never runs a full COUNT."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # No ORDER BY inside the capped count: it would make Postgres sort instead of
        # counting from an index.
        return self.object_list.order_by()[: self.CAP + 1].count()


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def status_badge(status: str, colors: dict[str, str] = STATUS_COLORS):
    """A coloured badge; ``colors`` maps each status of the model to its colour (a test
    checks that every status has one)."""
    color = colors.get(status, "#777")
    return format_html('<span class="jp-badge" style="background:{}">{}</span>', color, status)


def progress_bar(value: int):
    return format_html(
        '<div class="jp-progress" title="{}%"><div style="width:{}%"></div></div>', value, value
    )


def pretty_json(value) -> str:
    return format_html(
        '<pre class="jp-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


def report_done(modeladmin, request, *, action: str, count: int, noun: str) -> None:
    """Tell the user what an action did (the service wrote the audit row)."""
    modeladmin.message_user(request, f"{action.replace('_', ' ').capitalize()}: {count} {noun}.")
