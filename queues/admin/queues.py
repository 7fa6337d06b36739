"""Queues, workers, attempts and the audit log in the admin. The queue list steers in
place (pause, resume and limits): ``queues.admin.steering``."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from queues import services
from queues.admin.common import CappedPaginator, ReadOnlyMixin, report_done
from queues.admin.steering import QueueSteeringMixin
from queues.dashboard import queue_steering
from queues.exceptions import InvalidJobState
from queues.models import AuditLog, JobAttempt, JobStatus, Queue, Worker
from queues.selectors import is_live
from queues.services.queues import CLEANABLE


class CleanForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[(s, JobStatus(s).label) for s in CLEANABLE],
        initial="completed",
    )
    grace_ms = forms.IntegerField(min_value=0, initial=3_600_000, label=_("Older than (ms)"))
    limit = forms.IntegerField(min_value=1, initial=1000, label=_("At most"))


@admin.register(Queue)
class QueueAdmin(QueueSteeringMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "paused",
        "waiting",
        "active",
        "delayed",
        "failed",
        "completed",
        "latency",
        "concurrency",
        "rate_limit",
    ]
    list_filter = ["paused"]
    list_select_related = ["snapshot"]
    search_fields = ["name", "description"]
    actions = ["pause_selected", "resume_selected", "empty_selected", "clean_selected"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "paused"]}),
        (
            _("Job defaults"),
            {
                "fields": [
                    "default_priority",
                    "default_attempts",
                    "default_backoff",
                    "default_timeout",
                ]
            },
        ),
        (
            _("Limits"),
            {
                "fields": [
                    "rate_limit_max",
                    "rate_limit_duration_ms",
                    "concurrency",
                    "lock_duration",
                    "max_stalled",
                ]
            },
        ),
        (
            _("Retention"),
            {"fields": ["keep_completed_count", "keep_completed_age", "keep_failed_age"]},
        ),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]

    def _count(self, queue, status):
        snapshot = getattr(queue, "snapshot", None)
        return snapshot.counts.get(status, 0) if snapshot else "-"

    @admin.display(description=_("waiting"))
    def waiting(self, q):
        return self._count(q, "waiting")

    @admin.display(description=_("active"))
    def active(self, q):
        """Active jobs; with a concurrency cap, the utilisation too (active / cap)."""
        if not getattr(q, "snapshot", None) or not q.concurrency:
            return self._count(q, "active")
        state = queue_steering(q)
        pct = state["utilisation_pct"]
        return format_html(
            '<div class="jp-util-box"><span class="jp-util" title="{}">{} / {} · {} %</span>'
            '<span class="jp-meter{}"><span style="width:{}%"></span></span></div>',
            gettext("utilisation: active jobs / concurrency"),
            state["active"],
            state["concurrency"],
            pct,
            " jp-over" if pct > 100 else "",
            min(pct, 100),
        )

    @admin.display(description=_("delayed"))
    def delayed(self, q):
        return self._count(q, "delayed")

    @admin.display(description=_("failed"))
    def failed(self, q):
        return self._count(q, "failed")

    @admin.display(description=_("completed"))
    def completed(self, q):
        return self._count(q, "completed")

    @admin.display(description=_("latency"))
    def latency(self, q):
        seconds = q.latency_seconds(timezone.now())
        return gettext("%(seconds).0f s") % {"seconds": seconds} if seconds else "-"

    @admin.display(description=_("rate limit"))
    def rate_limit(self, q):
        if q.rate_limit_max and q.rate_limit_duration_ms:
            return gettext("%(max)s / %(ms)s ms") % {
                "max": q.rate_limit_max,
                "ms": q.rate_limit_duration_ms,
            }
        return "-"

    @admin.action(description=_("Pause selected queues"), permissions=["pause"])
    def pause_selected(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            services.pause_queue(name, by=request.user)
        report_done(self, request, action="pause_queues", count=len(names), noun=gettext("queues"))

    @admin.action(description=_("Resume selected queues"), permissions=["pause"])
    def resume_selected(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        for name in names:
            services.resume_queue(name, by=request.user)
        report_done(self, request, action="resume_queues", count=len(names), noun=gettext("queues"))

    @admin.action(
        description=_("Empty selected queues (delete waiting jobs)"), permissions=["empty"]
    )
    def empty_selected(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        count = sum(services.empty_queue(name, by=request.user) for name in names)
        report_done(
            self, request, action="empty_queues", count=count, noun=gettext("waiting jobs deleted")
        )

    @admin.action(
        description=_("Clean selected queues (by status and age)…"), permissions=["empty"]
    )
    def clean_selected(self, request, queryset):
        names = list(queryset.values_list("name", flat=True))
        form = CleanForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            try:
                count = sum(
                    services.clean_queue(name, by=request.user, **form.cleaned_data)
                    for name in names
                )
            except InvalidJobState as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            report_done(
                self, request, action="clean_queues", count=count, noun=gettext("jobs deleted")
            )
            return None
        return render(
            request,
            "admin/queues/clean_queues.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Clean queues"),
                "form": form,
                "queues": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def has_empty_permission(self, request):
        return request.user.has_perm("queues.delete_job")


@admin.register(Worker)
class WorkerAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "hostname",
        "pid",
        "queues",
        "concurrency",
        "started_at",
        "last_heartbeat",
        "jobs_done",
        "state",
    ]

    @admin.display(description=_("state"))
    def state(self, worker):
        stale = not is_live(worker)
        return format_html(
            '<span class="jp-badge" style="background:{}">{}</span>',
            "#ba2121" if stale else "#2e7d32",
            gettext("stale") if stale else gettext("online"),
        )


@admin.register(JobAttempt)
class JobAttemptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["job", "number", "outcome", "worker", "started_at", "duration_ms"]
    list_filter = ["outcome"]
    list_select_related = ["job"]
    show_full_result_count = False
    paginator = CappedPaginator
    search_fields = ["=job__id"]


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "username", "action", "target", "count", "detail"]
    list_filter = ["action"]
    search_fields = ["username", "action", "target"]
