"""The schedule admin's own endpoints: the editor's live preview, and a list row's Run now /
Pause / Resume button. ScheduledJobAdmin.get_urls routes to them, with itself as
``model_admin``."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from queues.humanize import human_time
from scheduling import services
from scheduling.admin.changelist import row_buttons, sparkline
from scheduling.admin.forms import PreviewForm, default_zone
from scheduling.cron import ScheduleError, get_zone
from scheduling.models import ScheduledJob
from scheduling.selectors import attach_recent_runs, preview, schedule_changelist

# The list's per-row buttons: the permission each needs (as the bulk actions do).
ROW_ACTIONS = {"run": "run", "pause": "pause", "resume": "pause"}


@require_GET
def timing_preview(request: HttpRequest, model_admin: admin.ModelAdmin) -> JsonResponse:
    """GET ?kind=cron&cron=…&timezone=… (or every/period, or run_at): the timing in
    words and its next runs, as JSON; 400 with ``errors`` naming the field at fault."""
    if not (
        model_admin.has_view_or_change_permission(request)
        or model_admin.has_add_permission(request)
    ):
        raise PermissionDenied
    form = PreviewForm(request.GET)
    if not form.is_valid() or form.timing is None:
        errors = {field: str(messages_[0]) for field, messages_ in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    timing = form.timing
    zone = get_zone(form.cleaned_data.get("timezone") or default_zone())
    data = preview(
        kind=form.cleaned_data["kind"],
        zone=zone,
        viewer_zone=form.viewer_zone(),
        now=form.instant(),
        cron=timing.get("cron"),
        every=timing.get("every"),
        period=timing.get("period"),
        run_at=timing.get("run_at"),
    )
    return JsonResponse(data)


@require_POST
def row_action(request: HttpRequest, model_admin: admin.ModelAdmin, pk, action: str):
    """A row's Run now / Pause / Resume button: POST through the audited service, then
    JSON for fetch() or back to the list with a message."""
    if action not in ROW_ACTIONS:
        raise Http404
    if not getattr(model_admin, f"has_{ROW_ACTIONS[action]}_permission")(request):
        raise PermissionDenied
    schedule = get_object_or_404(ScheduledJob, pk=pk)
    ok = True
    try:
        if action == "run":
            services.run_now(schedule, by=request.user)
            done = gettext("%(name)s: a run was enqueued now.")
        elif action == "pause":
            services.pause(schedule, by=request.user)
            done = gettext("%(name)s: paused.")
        else:
            services.resume(schedule, by=request.user)
            done = gettext("%(name)s: enabled.")
        text = done % {"name": schedule.name}
    except ScheduleError as exc:
        ok, text = False, str(exc)
    if "application/json" in request.headers.get("Accept", ""):
        row = schedule_changelist().get(pk=pk)
        attach_recent_runs([row])
        return JsonResponse(
            {
                "ok": ok,
                "message": text,
                "status": row.status,
                "status_label": str(row.get_status_display()),
                "cells": {
                    "status": str(row.get_status_display()),
                    "next_run": str(human_time(row.next_run_at)),
                    "recent_runs": str(sparkline(row.recent_runs)),
                    "row_actions": str(row_buttons(row, request, model_admin)),
                },
            },
            status=200 if ok else 409,
        )
    model_admin.message_user(request, text, messages.SUCCESS if ok else messages.ERROR)
    # Back where the button was, when that is a page of this site.
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:scheduling_scheduledjob_changelist")
    return HttpResponseRedirect(target)
