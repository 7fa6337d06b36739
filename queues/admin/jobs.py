"""Jobs in the admin: search by id or payload, bulk actions over everything matching, and
a job's page (its own views, the new-job form among them, are in job_views.py)."""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.db.models import Prefetch
from django.db.models.functions import Left
from django.template.loader import render_to_string
from django.urls import path, re_path, reverse
from django.utils.functional import lazy
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from queues import services
from queues.admin.common import (
    CappedPaginator,
    pretty_json,
    progress_bar,
    report_done,
    status_badge,
)
from queues.admin.job_views import (
    JOB_BUTTONS,
    enqueue_view,
    export_file,
    job_action,
    job_page_context,
    live_state,
)
from queues.admin.timeline import LOG_LIMIT, build_timeline, running_attempt
from queues.extensions import job_details
from queues.humanize import human_duration, human_time
from queues.models import FINAL_STATUSES, Job, JobAttempt, JobLog, JobStatus
from queues.registry import handler_names
from queues.search import SEARCH_HELP, SearchError, search_jobs
from queues.selectors import job_dependants, job_dependencies

# How much of a job's error the list reads, for its first line.
ERROR_HEAD = 200


def _time_display(name: str):
    """A read-only field of the job's page showing the datetime field ``name`` with
    human_time, labelled as the field."""

    @admin.display(description=Job._meta.get_field(name).verbose_name)
    def show(modeladmin, job):
        return human_time(getattr(job, name))

    show.__name__ = f"{name}_time"
    return show


# The search help with its examples as code (they are the syntax, the same in every
# language): built when a page shows it, in that page's language.
_EXAMPLE = re.compile(r"[A-Za-z][\w.]*:(?:&quot;[^&]*&quot;|[\w.@*-]+(?:,[\w-]+)*)|[\w-]+\*")


def _search_help_html() -> SafeString:
    return mark_safe(_EXAMPLE.sub(r"<code>\g<0></code>", escape(str(SEARCH_HELP))))  # noqa: S308


SEARCH_HELP_HTML = lazy(_search_help_html, SafeString)()


class HandlerFilter(admin.SimpleListFilter):
    """Handler names from the registry: no DISTINCT over the jobs table."""

    title = _("handler")
    parameter_name = "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in handler_names()]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    # Fits at 1,280 px beside the admin's sidebar and the filters: the priority and the
    # progress are on the job's page (an active job's progress shows in its status).
    list_display = [
        "short_id",
        "name",
        "queue",
        "status_tag",
        "attempts",
        "created",
        "took",
        "error_line",
    ]
    list_filter = ["status", "queue", HandlerFilter, "created_at"]
    list_select_related = ["queue"]
    list_per_page = 50
    search_fields = ["name"]
    search_help_text = SEARCH_HELP_HTML
    show_full_result_count = False
    paginator = CappedPaginator
    ordering = ["-created_at"]
    actions = ["retry_selected", "cancel_selected", "promote_selected", "delete_selected_jobs"]
    fields = [
        "id",
        "name",
        "queue",
        "status_tag",
        "priority",
        "progress_tag",
        "attempts_made",
        "max_attempts",
        "stalled_count",
        "created_at_time",
        "run_at_time",
        "started_at_time",
        "finished_at_time",
        "worker",
        "locked_until_time",
        "timeout",
        "backoff",
        "unique_key",
        "payload_json",
        "result_json",
        "error",
        "traceback_text",
        "attempts_table",
        "depends_on",
        "dependants",
        "related",
        "download",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match and match.url_name and match.url_name.endswith("changelist"):
            # The first line of the error, without reading the whole text for every row.
            qs = qs.defer("payload", "result", "backoff", "error").annotate(
                error_head=Left("error", ERROR_HEAD)
            )
        elif match and match.url_name == "queues_job_change":
            # The page shows the queue and every attempt (the timeline, the last
            # traceback): one query each, whatever the number of attempts.
            qs = qs.select_related("queue").prefetch_related(
                Prefetch("attempts", queryset=JobAttempt.objects.order_by("number"))
            )
        return qs

    def get_object(self, request, object_id, from_field=None):
        # change_view reads the job for its buttons before the stock view reads it again:
        # one read per request.
        key = (object_id, from_field)
        cached = getattr(request, "_jp_job", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        job = super().get_object(request, object_id, from_field)
        request._jp_job = (key, job)
        return job

    def get_search_results(self, request, queryset, search_term):
        try:
            return search_jobs(queryset, search_term), False
        except SearchError as exc:
            # An action POST reads the changelist's queryset twice: say it once. No rows,
            # not all of them: "select all" over a refused search must change nothing.
            if not getattr(request, "_job_search_error", False):
                request._job_search_error = True
                self.message_user(request, str(exc), messages.ERROR)
            return queryset.none(), False

    def has_add_permission(self, request):
        # The add page is the new-job form (enqueue), not a model form.
        return request.user.has_perm("queues.add_job")

    def add_view(self, request, form_url="", extra_context=None):
        return enqueue_view(request, self)

    def has_change_permission(self, request, obj=None):
        return False  # jobs change through actions only

    # --- columns ------------------------------------------------------------------------

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, job):
        return str(job.pk)[:13]

    @admin.display(description=_("tries"), ordering="attempts_made")
    def attempts(self, job):
        return job.attempts_made

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, job):
        return human_time(job.created_at)

    @admin.display(description=_("took"))
    def took(self, job):
        if job.started_at and job.finished_at and job.status in FINAL_STATUSES:
            return human_duration(job.finished_at - job.started_at)
        return "-"

    @admin.display(description=_("error"))
    def error_line(self, job):
        head = getattr(job, "error_head", None)
        if head is None:
            head = job.error[:ERROR_HEAD]
        line = head.strip().splitlines()[0] if head.strip() else ""
        if not line:
            return "-"
        short = line if len(line) <= 80 else line[:79] + "…"
        return format_html('<span class="jp-error" title="{}">{}</span>', line, short)

    @admin.display(description=_("status"), ordering="status")
    def status_tag(self, job):
        badge = status_badge(job.status)
        if job.status == JobStatus.ACTIVE:  # how far it is, in the list too
            return format_html("{} {}", badge, progress_bar(job.progress))
        return badge

    @admin.display(description=_("progress"))
    def progress_tag(self, job):
        # job.js moves it while the job runs.
        return format_html(
            '<div class="jp-progress" id="jp-live-progress" role="progressbar" aria-label="{}"'
            ' aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}" title="{}%">'
            '<div style="width:{}%"></div></div> <span id="jp-live-progress-text">{}%</span>',
            gettext("progress"),
            job.progress,
            job.progress,
            job.progress,
            job.progress,
        )

    # The job's moments as "3 minutes ago", the exact time in a tooltip.
    created_at_time = _time_display("created_at")
    run_at_time = _time_display("run_at")
    started_at_time = _time_display("started_at")
    finished_at_time = _time_display("finished_at")
    locked_until_time = _time_display("locked_until")

    @admin.display(description=_("payload"))
    def payload_json(self, job):
        return pretty_json(job.payload)

    @admin.display(description=_("result"))
    def result_json(self, job):
        return pretty_json(job.result) if job.result is not None else "-"

    @admin.display(description=_("attempts"))
    def attempts_table(self, job):
        """The attempts on one time axis, each with its log lines (one query: the job's
        newest LOG_LIMIT lines; the attempts are prefetched)."""
        # Job.attempt_history: the attempt rows, and a completed job's completing attempt,
        # which lives on the job's own row; an active job's current attempt is on it too.
        history = job.attempt_history()
        running = running_attempt(job, history)
        attempts = [*history, running] if running else history
        logs = list(
            JobLog.objects.filter(job=job)
            .only("attempt", "created_at", "message")
            .order_by("-id")[: LOG_LIMIT + 1]
        )
        cut = len(logs) > LOG_LIMIT
        logs = logs[:LOG_LIMIT][::-1]
        if not attempts and not logs:
            return "-"
        timeline = build_timeline(attempts, logs, logs_cut=cut)
        return render_to_string(
            "admin/queues/job/timeline.html", {"timeline": timeline, "log_limit": LOG_LIMIT}
        )

    @admin.display(description=_("last traceback"))
    def traceback_text(self, job):
        # From the prefetched attempts: no query of its own.
        with_traceback = [a for a in job.attempts.all() if a.traceback]
        if not with_traceback:
            return "-"
        last = max(with_traceback, key=lambda a: a.number)
        return format_html("<pre class='jp-json'>{}</pre>", last.traceback)

    def _links(self, jobs):
        change = "admin:queues_job_change"
        rows = [(reverse(change, args=[j.pk]), j.name, j.status, str(j.pk)[:13]) for j in jobs]
        if not rows:
            return "-"
        return format_html_join(", ", '<a href="{}">{} ({}, {})</a>', rows)

    @admin.display(description=_("depends on"))
    def depends_on(self, job):
        return self._links(job_dependencies(job)[:50])

    @admin.display(description=_("dependants"))
    def dependants(self, job):
        return self._links(job_dependants(job)[:50])

    @admin.display(description=_("export file"))
    def download(self, job):
        if job.name != "export-data" or job.status != JobStatus.COMPLETED:
            return "-"
        url = reverse("admin:queues_job_export", args=[job.pk])
        return format_html(
            '<a href="{}">{} {}</a>', url, gettext("Download"), (job.result or {}).get("file")
        )

    @admin.display(description=_("related"))
    def related(self, job):
        # Rows other apps register (scheduling: "created by schedule").
        rows = [(label, render(job)) for label, render in job_details]
        rows = [(label, html) for label, html in rows if html]
        if not rows:
            return "-"
        return format_html_join("", "<div>{}: {}</div>", rows)

    def get_urls(self):
        return [
            re_path(
                rf"^(?P<pk>[0-9a-f-]{{36}})/(?P<action>{'|'.join(JOB_BUTTONS)})/$",
                self.admin_site.admin_view(self.job_action_view),
                name="queues_job_action",
            ),
            path(
                "<uuid:pk>/export/",
                self.admin_site.admin_view(self.export_view),
                name="queues_job_export",
            ),
            path(
                "<uuid:pk>/live/",
                self.admin_site.admin_view(self.live_view),
                name="queues_job_live",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        # The stock view reads it again, from get_object's memo; None: it says the job
        # does not exist.
        job = self.get_object(request, object_id)
        if job is not None:
            extra_context.update(job_page_context(job, request.user))
        return super().change_view(request, object_id, form_url, extra_context)

    # The views are in job_views.py; these hand them this admin (its permissions, messages).
    def live_view(self, request, pk):
        return live_state(request, self, pk)

    def job_action_view(self, request, pk, action):
        return job_action(request, self, pk, action)

    def export_view(self, request, pk):
        return export_file(request, self, pk)

    # --- actions (each over everything selected, "select all" included) ----------------

    @admin.action(description=_("Retry selected jobs (failed or cancelled)"), permissions=["retry"])
    def retry_selected(self, request, queryset):
        count = services.retry_jobs(queryset, by=request.user)
        report_done(self, request, action="retry_jobs", count=count, noun=gettext("jobs"))

    @admin.action(description=_("Cancel selected jobs"), permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        count = services.cancel_jobs(queryset, by=request.user)
        report_done(self, request, action="cancel_jobs", count=count, noun=gettext("jobs"))

    @admin.action(description=_("Run selected delayed jobs now"), permissions=["promote"])
    def promote_selected(self, request, queryset):
        count = services.promote_jobs(queryset, by=request.user)
        report_done(self, request, action="promote_jobs", count=count, noun=gettext("jobs"))

    @admin.action(description=_("Delete selected jobs (not active ones)"), permissions=["delete"])
    def delete_selected_jobs(self, request, queryset):
        deleted, skipped = services.delete_jobs(queryset, by=request.user)
        report_done(self, request, action="delete_jobs", count=deleted, noun=gettext("jobs"))
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d active job was not deleted: cancel it first.",
                    "%(count)d active jobs were not deleted: cancel them first.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )

    def has_delete_permission(self, request, obj=None):
        # An active job's worker still has to record its attempt: cancel it first.
        if obj is not None and obj.status == JobStatus.ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        # The page's Delete button follows the same rules as the bulk action.
        services.delete_jobs(Job.objects.filter(pk=obj.pk), by=request.user, target=str(obj.pk))

    def delete_queryset(self, request, queryset):
        services.delete_jobs(queryset, by=request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours deletes in bulk, without the per-row page
        return actions

    def has_retry_permission(self, request):
        return request.user.has_perm("queues.retry_job")

    def has_cancel_permission(self, request):
        return request.user.has_perm("queues.cancel_job")

    def has_promote_permission(self, request):
        return request.user.has_perm("queues.promote_job")
