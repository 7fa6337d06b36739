"""Steering queues in place from the queue list (the dashboard's rows post to the same
endpoints): pause, resume and limits, each a small POST endpoint answering JSON for
fetch(), or a redirect back with a message for a plain form post. The changes themselves
are the audited services of ``queues.services``."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from queues import services
from queues.dashboard import queue_steering, steering_permissions
from queues.models import Queue
from queues.services.queues import LIMIT_FIELDS


class QueueLimitsForm(forms.Form):
    """Reads the numbers a limits control posts (empty: no limit); the service checks
    them."""

    concurrency = forms.IntegerField(required=False)
    rate_limit_max = forms.IntegerField(required=False)
    rate_limit_duration_ms = forms.IntegerField(required=False)


class QueueSteeringMixin:
    """For the queue's ModelAdmin: the list's steering columns (for users who may use
    them) and the pause, resume and limits endpoints, wrapped in ``admin_view``.

    The controls' inputs and buttons sit in the list's cells but belong (HTML form
    attribute) to small forms per queue (limits; pause or resume) that the template puts
    after the action form: forms cannot nest."""

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
        # Also the permission of the list's pause and resume actions.
        return request.user.has_perm("queues.pause_queue")


def _label(field: str) -> str:
    return str(Queue._meta.get_field(field).verbose_name)


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


def _wants_json(request) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


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
