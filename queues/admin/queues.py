"""Queues, workers, attempts and the audit log in the admin. The queue list steers in
place: pause, resume and limits, each a small POST endpoint (JSON for fetch(), a redirect
with a message for a plain form)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from queues import services
from queues.admin.common import CappedPaginator, ReadOnlyMixin, report_done
from queues.dashboard import queue_steering, steering_permissions
from queues.exceptions import InvalidJobState
from queues.models import AuditLog, JobAttempt, JobStatus, Queue, Worker
from queues.selectors import is_live
from queues.services.queues import CLEANABLE, LIMIT_FIELDS


class CleanForm(forms.Form):
    status = forms.ChoiceField(
        label=_("status"),
        choices=[(s, JobStatus(s).label) for s in CLEANABLE],
        initial="completed",
    )
    grace_ms = forms.IntegerField(min_value=0, initial=3_600_000, label=_("Older than (ms)"))
    limit = forms.IntegerField(min_value=1, initial=1000, label=_("At most"))


class QueueLimitsForm(forms.Form):
    """Reads the numbers a limits control posts (empty: no limit); the service checks
    them."""

    concurrency = forms.IntegerField(required=False)
    rate_limit_max = forms.IntegerField(required=False)
    rate_limit_duration_ms = forms.IntegerField(required=False)


def _label(field: str) -> str:
    return str(Queue._meta.get_field(field).verbose_name)


def _wants_json(request) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
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

    # Steering in place. The controls' inputs and buttons sit in the list's cells but
    # belong (HTML form attribute) to small forms per queue (limits; pause or resume) that
    # the template puts after the action form: forms cannot nest.

    def get_list_display(self, request):
        can = steering_permissions(request.user)
        columns = list(super().get_list_display(request))
        if can["pause"]:
            columns[columns.index("paused")] = _paused_column()
        if can["change"]:
            columns[columns.index("concurrency")] = self.concurrency_input
            columns[columns.index("rate_limit")] = self.rate_limit_inputs
        return columns

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "jp_steer": steering_permissions(request.user)}
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("concurrency"), ordering="concurrency")
    def concurrency_input(self, q):
        return _number_input(q, "concurrency")

    @admin.display(description=_("rate limit"), ordering="rate_limit_max")
    def rate_limit_inputs(self, q):
        # The row's Save sits at its end; Enter in any of its fields presses it too.
        return format_html(
            '<span class="jp-rate-inputs">{} / {} {}</span> '
            '<button type="submit" class="button jp-steer-button" form="jp-steer-{}" '
            'data-steer="limits">{}</button>',
            _number_input(q, "rate_limit_max"),
            _number_input(q, "rate_limit_duration_ms"),
            gettext("ms"),
            q.pk,
            gettext("Save"),
        )

    def get_urls(self):
        def steer(view):
            return self.admin_site.admin_view(require_POST(view))

        return [
            path("<int:pk>/pause/", steer(self.pause_view), name="queues_queue_pause"),
            path("<int:pk>/resume/", steer(self.resume_view), name="queues_queue_resume"),
            path("<int:pk>/limits/", steer(self.limits_view), name="queues_queue_limits"),
            *super().get_urls(),
        ]

    def pause_view(self, request, pk):
        return self._set_paused(request, pk, paused=True)

    def resume_view(self, request, pk):
        return self._set_paused(request, pk, paused=False)

    def _set_paused(self, request, pk, *, paused: bool):
        if not self.has_pause_permission(request):
            return _refuse(request, gettext("You may not pause or resume queues."))
        queue = get_object_or_404(Queue, pk=pk)
        if paused:
            queue = services.pause_queue(queue.name, by=request.user)
            message = gettext("Queue %(name)s is paused: it starts no new jobs.")
        else:
            queue = services.resume_queue(queue.name, by=request.user)
            message = gettext("Queue %(name)s is resumed.")
        return _answer(request, queue, message % {"name": queue.name})

    def limits_view(self, request, pk):
        if not self.has_change_permission(request):
            return _refuse(request, gettext("You may not change the limits of queues."))
        queue = get_object_or_404(Queue, pk=pk)
        form = QueueLimitsForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError(form.errors.as_data())
            # A field left out of the post keeps its value.
            given = {f: form.cleaned_data[f] for f in LIMIT_FIELDS if f in request.POST}
            queue = services.set_queue_limits(queue.name, **given, by=request.user)
        except ValidationError as exc:
            return _invalid(request, queue, exc.message_dict)
        rate = (
            gettext("%(max)s / %(ms)s ms")
            % {"max": queue.rate_limit_max, "ms": queue.rate_limit_duration_ms}
            if queue.rate_limit_max
            else gettext("no limit")
        )
        message = gettext(
            "Limits of queue %(name)s saved: concurrency %(concurrency)s, rate limit %(rate)s."
        ) % {
            "name": queue.name,
            "concurrency": queue.concurrency or gettext("no limit"),
            "rate": rate,
        }
        return _answer(request, queue, message)

    def has_pause_permission(self, request):
        return request.user.has_perm("queues.pause_queue")

    def has_empty_permission(self, request):
        return request.user.has_perm("queues.delete_job")


def _paused_column():
    # Named "paused": the cell keeps its class (field-paused) and its yes/no icon.
    @admin.display(description=_("paused"), ordering="paused")
    def paused(q):
        step = "resume" if q.paused else "pause"
        return format_html(
            '<img src="{}" alt="{}"> <button type="submit" class="button jp-steer-button" '
            'form="jp-pause-{}" data-steer="{}">{}</button>',
            static(f"admin/img/icon-{'yes' if q.paused else 'no'}.svg"),
            q.paused,
            q.pk,
            step,
            gettext("Resume") if q.paused else gettext("Pause"),
        )

    return paused


def _number_input(q: Queue, field: str):
    value = getattr(q, field)
    return format_html(
        '<input type="number" name="{}" form="jp-steer-{}" value="{}" min="1" step="1" '
        'inputmode="numeric" class="jp-num" aria-label="{}" title="{}" placeholder="∞">',
        field,
        q.pk,
        "" if value is None else value,
        f"{_label(field)} ({q.name})",
        gettext("no limit"),
    )


def _answer(request, queue: Queue, message: str):
    """A change made: its new state as JSON for fetch(), else back to the page with a
    message."""
    if _wants_json(request):
        queue = Queue.objects.select_related("snapshot").get(pk=queue.pk)
        return JsonResponse({"ok": True, "message": message, "queue": queue_steering(queue)})
    messages.success(request, message)
    return _back(request)


def _invalid(request, queue: Queue, errors: dict[str, list[str]]):
    """Refused values: nothing changed; say which field and why."""
    detail = "; ".join(
        f"{_label(field) if field in LIMIT_FIELDS else field}: {' '.join(texts)}"
        for field, texts in errors.items()
    )
    message = gettext("The limits of queue %(name)s were not changed: %(errors)s") % {
        "name": queue.name,
        "errors": detail,
    }
    if _wants_json(request):
        return JsonResponse({"ok": False, "message": message, "errors": errors}, status=400)
    messages.error(request, message)
    return _back(request)


def _refuse(request, message: str):
    if _wants_json(request):
        return JsonResponse({"ok": False, "message": message}, status=403)
    raise PermissionDenied(message)


def _back(request):
    """Where the control was: the page named by ``next`` when it is on this site."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:queues_queue_changelist")
    return HttpResponseRedirect(target)


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
