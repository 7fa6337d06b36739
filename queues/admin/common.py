"""Pieces shared by the queues admin pages."""

from __future__ import annotations

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

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


def status_badge(status: str, colors: dict[str, str] = STATUS_COLORS, label=None):
    """A coloured badge; ``colors`` maps each status of the model to its colour (a test
    checks that every status has one). ``label``: the status as the user reads it (the
    model's ``get_status_display()``); a job status's own label by default."""
    color = colors.get(status, "#777")
    return format_html(
        '<span class="jp-badge" style="background:{}" data-status="{}">{}</span>',
        color,
        status,
        label or status_label(status),
    )


def status_label(status: str) -> str:
    """A status value as the user reads it: the word in the active language (the value
    itself in English); another model's status stays as it is."""
    from queues.models import status_word

    return status_word(status)


def progress_bar(value: int):
    return format_html(
        '<div class="jp-progress" title="{}%"><div style="width:{}%"></div></div>', value, value
    )


def pretty_json(value) -> str:
    return format_html(
        '<pre class="jp-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


# Every action code the services write to the audit log, as the user reads it. Other
# apps' codes are here too (queues imports none of them): schedules and devices.
ACTION_LABELS = {
    "retry_jobs": gettext_lazy("Retry jobs"),
    "cancel_jobs": gettext_lazy("Cancel jobs"),
    "promote_jobs": gettext_lazy("Promote jobs"),
    "delete_jobs": gettext_lazy("Delete jobs"),
    "edit_job": gettext_lazy("Edit job"),
    "duplicate_job": gettext_lazy("Duplicate job"),
    "enqueue": gettext_lazy("Enqueue"),
    "pause_queues": gettext_lazy("Pause queues"),
    "resume_queues": gettext_lazy("Resume queues"),
    "empty_queues": gettext_lazy("Empty queues"),
    "clean_queues": gettext_lazy("Clean queues"),
    "update_queue": gettext_lazy("Change queue"),
    "set_queue_limits": gettext_lazy("Set queue limits"),
    "enable_schedules": gettext_lazy("Enable schedules"),
    "disable_schedules": gettext_lazy("Disable schedules"),
    "pause_schedules": gettext_lazy("Pause schedules"),
    "run_schedules": gettext_lazy("Run schedules now"),
    "device_start": gettext_lazy("Start device"),
    "device_stop": gettext_lazy("Stop device"),
    "device_restart": gettext_lazy("Restart device"),
    "device_reset": gettext_lazy("Reset device"),
    "device_install": gettext_lazy("Install app on device"),
    "device_uninstall": gettext_lazy("Uninstall app from device"),
}


def action_label(action: str) -> str:
    """An audit action code ("retry_jobs") as the user reads it, in their language."""
    label = ACTION_LABELS.get(action)
    return str(label) if label else action.replace("_", " ").capitalize()


def report_done(modeladmin, request, *, action: str, count: int, noun: str) -> None:
    """Tell the user what an action did (the service wrote the audit row). ``noun`` is
    already in the user's language."""
    modeladmin.message_user(
        request,
        _("%(action)s: %(count)s %(noun)s.")
        % {"action": action_label(action), "count": count, "noun": noun},
    )
