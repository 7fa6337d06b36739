"""The schedule list's own columns and filter: the last runs as a sparkline, a row's
Run now / Pause / Resume buttons, and the domains."""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from queues.admin.common import STATUS_COLORS, status_label
from scheduling.models import ScheduledJob, ScheduleRun, ScheduleStatus
from scheduling.selectors import run_outcome

# The sparkline's colours: a job status's own (as on the job list), and two of a run's.
RUN_COLORS = {**STATUS_COLORS, "error": "#ba2121", "gone": "#999"}


class DomainFilter(admin.SimpleListFilter):
    """The schedules' domains; the empty one gets a name (a link needs a text)."""

    title = _("domain")
    parameter_name = "domain"
    NONE = "__none__"

    def lookups(self, request, model_admin):
        domains = ScheduledJob.objects.order_by("domain").values_list("domain", flat=True)
        return [(d or self.NONE, d or gettext("(no domain)")) for d in domains.distinct()]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(domain="" if self.value() == self.NONE else self.value())


def sparkline(runs: list[ScheduleRun]):
    """The latest runs as small boxes coloured by outcome, oldest first; each box's title
    says when it was due and what became of it."""
    if not runs:
        return format_html('<span class="jp-muted">{}</span>', gettext("no runs yet"))
    ordered = sorted(runs, key=lambda r: r.due_at)
    outcomes = [run_outcome(r) for r in ordered]
    # Plain strings, escaped once: 20 boxes on each of a page's rows through format_html
    # cost more than the page's queries.
    labels = {o: escape(outcome_label(o)) for o in set(outcomes)}
    zone = timezone.get_current_timezone()
    boxes = "".join(
        f'<span class="jp-spark-run" data-outcome="{escape(outcome)}" '
        f'style="background:{RUN_COLORS.get(outcome, "#777")}" '
        f'title="{run.due_at.astimezone(zone):%Y-%m-%d %H:%M:%S} · {labels[outcome]}"></span>'
        for run, outcome in zip(ordered, outcomes, strict=True)
    )
    label = ngettext(
        "Last %(count)d run, latest: %(outcome)s",
        "Last %(count)d runs, latest: %(outcome)s",
        len(ordered),
    ) % {"count": len(ordered), "outcome": outcome_label(outcomes[-1])}
    return format_html(
        '<span class="jp-spark" role="img" aria-label="{}">{}</span>',
        label,
        mark_safe(boxes),  # noqa: S308
    )


def outcome_label(outcome: str) -> str:
    if outcome == "error":
        return gettext("not enqueued")
    if outcome == "gone":
        return gettext("job deleted")
    return status_label(outcome)


def row_buttons(schedule: ScheduledJob, request, model_admin: admin.ModelAdmin):
    """The buttons ``request.user`` may use on this row. They submit the changelist form
    (its CSRF token) to their own URL: a plain POST without JavaScript, fetch() with it."""
    buttons = []
    if model_admin.has_run_permission(request):
        buttons.append(("run", gettext("Run now")))
    if model_admin.has_pause_permission(request):
        if schedule.status == ScheduleStatus.ENABLED:
            buttons.append(("pause", gettext("Pause")))
        elif schedule.status == ScheduleStatus.PAUSED:
            buttons.append(("resume", gettext("Resume")))
        else:
            buttons.append(("resume", gettext("Enable")))
    if not buttons:
        return "-"
    return format_html_join(
        "",
        '<button type="submit" class="jp-row-action" formaction="{}" formmethod="post" '
        'formnovalidate data-action="{}" data-schedule="{}">{}</button>',
        (
            (
                reverse("admin:scheduling_scheduledjob_row_action", args=[schedule.pk, action]),
                action,
                schedule.pk,
                label,
            )
            for action, label in buttons
        ),
    )


def row_buttons_column(request, model_admin: admin.ModelAdmin):
    """The buttons column for this request (list_display callables see only the row)."""

    def row_actions(obj):
        buttons = row_buttons(obj, request, model_admin)
        return format_html('<span class="jp-row-actions">{}</span>', buttons)

    row_actions.short_description = _("Actions")
    return row_actions
