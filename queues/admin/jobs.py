"""Jobs in the admin: search by id or payload, bulk actions over everything matching."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from queues import services
from queues.admin.common import (
    CappedPaginator,
    ReadOnlyMixin,
    pretty_json,
    progress_bar,
    report_done,
    status_badge,
)
from queues.exports import export_path
from queues.extensions import job_details
from queues.models import Job, JobLog, JobStatus
from queues.registry import handler_names
from queues.selectors import job_dependants, job_dependencies, payload_filter


class HandlerFilter(admin.SimpleListFilter):
    """Handler names from the registry: no DISTINCT over the jobs table."""

    title = "handler"
    parameter_name = "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in handler_names()]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


class LogInline(ReadOnlyMixin, admin.TabularInline):
    model = JobLog
    extra = 0
    fields = ["attempt", "created_at", "message"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "name",
        "queue",
        "status_tag",
        "priority",
        "attempts_made",
        "progress_tag",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "queue", HandlerFilter, "created_at"]
    list_select_related = ["queue"]
    list_per_page = 50
    search_fields = ["name"]
    search_help_text = (
        "A job id, key:value on the payload (to:alice@example.com, user.id:7), or a handler name."
    )
    show_full_result_count = False
    paginator = CappedPaginator
    ordering = ["-created_at"]
    actions = ["retry_selected", "cancel_selected", "promote_selected", "delete_selected_jobs"]
    inlines = [LogInline]
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
        "created_at",
        "run_at",
        "started_at",
        "finished_at",
        "worker",
        "locked_until",
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
            qs = qs.defer("payload", "result", "backoff", "error")
        return qs

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass
        condition = payload_filter(term)
        if condition is not None:
            return queryset.filter(condition), False
        return queryset.filter(name=term), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # jobs change through actions only

    # --- columns ------------------------------------------------------------------------

    @admin.display(description="id", ordering="id")
    def short_id(self, job):
        return str(job.pk)[:13]

    @admin.display(description="status", ordering="status")
    def status_tag(self, job):
        return status_badge(job.status)

    @admin.display(description="progress")
    def progress_tag(self, job):
        if job.status == JobStatus.ACTIVE:
            return progress_bar(job.progress)
        return f"{job.progress}%"

    @admin.display(description="payload")
    def payload_json(self, job):
        return pretty_json(job.payload)

    @admin.display(description="result")
    def result_json(self, job):
        return pretty_json(job.result) if job.result is not None else "-"

    @admin.display(description=_("attempts"))
    def attempts_table(self, job):
        # Job.attempt_history: the attempt rows, and a completed job's completing attempt,
        # which lives on the job's own row.
        attempts = job.attempt_history()
        if not attempts:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    a.number,
                    a.outcome,
                    a.worker or "-",
                    a.started_at.isoformat(timespec="milliseconds") if a.started_at else "-",
                    "-" if a.duration_ms is None else _("%(ms)s ms") % {"ms": a.duration_ms},
                    a.error or "",
                )
                for a in attempts
            ),
        )
        return format_html(
            "<table class='jp-attempts'><thead><tr><th>#</th><th>{}</th><th>{}</th>"
            "<th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("outcome"),
            _("worker"),
            _("started"),
            _("duration"),
            _("error"),
            rows,
        )

    @admin.display(description="last traceback")
    def traceback_text(self, job):
        last = job.attempts.exclude(traceback="").order_by("-number").first()
        return format_html("<pre class='jp-json'>{}</pre>", last.traceback) if last else "-"

    def _links(self, jobs):
        change = "admin:queues_job_change"
        rows = [(reverse(change, args=[j.pk]), j.name, j.status, str(j.pk)[:13]) for j in jobs]
        if not rows:
            return "-"
        return format_html_join(", ", '<a href="{}">{} ({}, {})</a>', rows)

    @admin.display(description="depends on")
    def depends_on(self, job):
        return self._links(job_dependencies(job)[:50])

    @admin.display(description="dependants")
    def dependants(self, job):
        return self._links(job_dependants(job)[:50])

    @admin.display(description="export file")
    def download(self, job):
        if job.name != "export-data" or job.status != JobStatus.COMPLETED:
            return "-"
        url = reverse("admin:queues_job_export", args=[job.pk])
        return format_html('<a href="{}">Download {}</a>', url, (job.result or {}).get("file"))

    def get_urls(self):
        return [
            path(
                "<uuid:pk>/export/",
                self.admin_site.admin_view(self.export_view),
                name="queues_job_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        file = export_path(pk)
        if not file.is_file():
            raise Http404("no export file for this job")
        return FileResponse(file.open("rb"), as_attachment=True, filename=f"export-{pk}.csv")

    @admin.display(description="related")
    def related(self, job):
        # Rows other apps register (scheduling: "created by schedule").
        rows = [(label, render(job)) for label, render in job_details]
        rows = [(label, html) for label, html in rows if html]
        if not rows:
            return "-"
        return format_html_join("", "<div>{}: {}</div>", rows)

    # --- actions (each over everything selected, "select all" included) ----------------

    @admin.action(description="Retry selected jobs (failed or cancelled)", permissions=["retry"])
    def retry_selected(self, request, queryset):
        count = services.retry_jobs(queryset, by=request.user)
        report_done(self, request, action="retry_jobs", count=count, noun="jobs")

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        count = services.cancel_jobs(queryset, by=request.user)
        report_done(self, request, action="cancel_jobs", count=count, noun="jobs")

    @admin.action(description="Run selected delayed jobs now", permissions=["promote"])
    def promote_selected(self, request, queryset):
        count = services.promote_jobs(queryset, by=request.user)
        report_done(self, request, action="promote_jobs", count=count, noun="jobs")

    @admin.action(description="Delete selected jobs (not active ones)", permissions=["delete"])
    def delete_selected_jobs(self, request, queryset):
        deleted, skipped = services.delete_jobs(queryset, by=request.user)
        report_done(self, request, action="delete_jobs", count=deleted, noun="jobs")
        if skipped:
            self.message_user(
                request,
                f"{skipped} active jobs were not deleted: cancel them first.",
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
