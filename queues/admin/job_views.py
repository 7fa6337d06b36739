"""The job pages' own views beside the stock ones: the new-job form (the add page), a job's
buttons and the endpoint they post to (edit shows its form first), the live state job.js
polls, and an export's file. JobAdmin routes to them, with itself as ``model_admin``."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from queues import services
from queues.admin.common import STATUS_COLORS, status_label
from queues.admin.forms import EnqueueForm, JobEditForm
from queues.exceptions import EnqueueError, InvalidJobState, JobNotFound
from queues.exports import export_path
from queues.models import FINAL_STATUSES, UNFINISHED_STATUSES, Job, JobStatus
from queues.registry import get_handler, handler_names
from queues.selectors import get_job
from queues.services.jobs import CANCELLABLE, RETRYABLE

# The buttons of a job's page: action -> (the permission it needs, its label). Each POSTs
# to /admin/queues/job/<id>/<action>/ (edit shows its form first).
JOB_BUTTONS = {
    "retry": ("queues.retry_job", _("Retry")),
    "cancel": ("queues.cancel_job", _("Cancel")),
    "promote": ("queues.promote_job", _("Run now")),
    "duplicate": ("queues.add_job", _("Duplicate")),
    "edit": ("queues.edit_job", _("Edit and retry")),
}


def handler_docs() -> dict[str, dict]:
    """Each registered handler's example payload and schema, for the new-job form."""
    docs = {}
    for name in handler_names():
        handler = get_handler(name)
        docs[name] = {"example": handler.example, "schema": handler.schema}
    return docs


def _doc_texts(doc: dict) -> dict:
    def text(value):
        return json.dumps(value, indent=2, ensure_ascii=False)

    return {
        "example": doc.get("example"),
        "example_json": text(doc.get("example")),
        "schema": doc.get("schema"),
        "schema_json": text(doc.get("schema")),
    }


def enqueue_view(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Enqueue a job by hand: a registered handler, its payload (checked against the
    handler's schema), and enqueue's options; audited as ``enqueue``."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    docs = handler_docs()
    chosen = request.GET.get("name")
    chosen = chosen if chosen in docs else next(iter(docs), None)
    # The chosen handler's example fills the payload (the page's script swaps it for
    # another handler's example until the user types their own).
    example = (docs.get(chosen) or {}).get("example")
    initial = {"name": chosen, "payload": example}
    form = EnqueueForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method != "POST" and example is not None:
        form.fields["payload"].widget.attrs["data-from-example"] = "1"
    if request.method == "POST" and form.is_valid():
        name, payload, options = form.enqueue_arguments()
        try:
            job = services.enqueue(name, payload, by=request.user, **options)
        except EnqueueError as exc:
            form.add_error(None, str(exc))
        else:
            model_admin.message_user(
                request, gettext("Job %(id)s was enqueued.") % {"id": job.pk}, messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:queues_job_change", args=[job.pk]))
    chosen = form["name"].value() or chosen
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "form": form,
        "title": gettext("Enqueue a job"),
        "handler_docs": docs,
        "handler_doc": _doc_texts(docs.get(chosen) or {}),
    }
    return TemplateResponse(request, "admin/queues/job/enqueue.html", context)


def job_buttons(job: Job, user) -> list[dict]:
    """The actions this job's state allows and ``user`` holds the permission for."""
    allowed = {
        "retry": job.status in RETRYABLE and not job.worker,
        "cancel": job.status in CANCELLABLE,
        "promote": job.status == JobStatus.DELAYED,
        "duplicate": True,
        "edit": services.can_edit(job),
    }
    buttons = []
    for action, (perm, label) in JOB_BUTTONS.items():
        if not (allowed[action] and user.has_perm(perm)):
            continue
        if action == "edit" and job.status not in RETRYABLE:
            label = _("Edit")
        buttons.append(
            {
                "action": action,
                "label": label,
                "url": reverse("admin:queues_job_action", args=[job.pk, action]),
                "form": action == "edit",  # a GET to its form, not a POST
            }
        )
    return buttons


def job_page_context(job: Job, user) -> dict:
    """What a job's page adds to the stock change view: its buttons, and what job.js
    needs to poll the live state while the job is unfinished."""
    return {
        "job_buttons": job_buttons(job, user),
        "job_live": {
            "url": reverse("admin:queues_job_live", args=[job.pk]),
            "status": job.status,
            "attempts_made": job.attempts_made,
            "poll": job.status in UNFINISHED_STATUSES,
        },
    }


def live_state(request: HttpRequest, model_admin: admin.ModelAdmin, pk) -> JsonResponse:
    """A job's state as JSON, which job.js polls while the job's page is open and the
    job unfinished: one query."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    row = (
        Job.objects.filter(pk=pk)
        .values("status", "progress", "attempts_made", "worker", "started_at", "finished_at")
        .first()
    )
    if row is None:
        raise Http404(gettext("no job has id %(id)s") % {"id": repr(str(pk))})
    status = row["status"]
    return JsonResponse(
        {
            **row,
            "status_label": status_label(status),
            "status_color": STATUS_COLORS.get(status, "#777"),
            "final": status in FINAL_STATUSES,
            "now": timezone.now(),
        }
    )  # admin_view makes it no-store


def job_action(
    request: HttpRequest, model_admin: admin.ModelAdmin, pk, action: str
) -> HttpResponse:
    """One button of a job's page: POST runs it through its audited service (edit:
    GET shows the form), then back to the job's page with what happened."""
    if action not in JOB_BUTTONS:
        raise Http404(gettext("no such job action: %(action)s") % {"action": action})
    if not request.user.has_perm(JOB_BUTTONS[action][0]):
        raise PermissionDenied
    try:
        job = get_job(pk)
    except JobNotFound as exc:
        raise Http404(str(exc)) from None
    if action == "edit":
        return _edit_view(request, model_admin, job)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    page = reverse("admin:queues_job_change", args=[job.pk])
    try:
        if action == "retry":
            services.retry_job(job.pk, by=request.user)
            done = gettext("The job was sent back to its queue.")
        elif action == "cancel":
            services.cancel_job(job.pk, by=request.user)
            done = gettext("The job was cancelled.")
        elif action == "promote":
            services.promote_job(job.pk, by=request.user)
            done = gettext("The job will run now.")
        else:
            copy = services.duplicate_job(job.pk, by=request.user)
            page = reverse("admin:queues_job_change", args=[copy.pk])
            done = gettext("This is a copy of job %(id)s, enqueued.") % {"id": job.pk}
    except (InvalidJobState, EnqueueError) as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        model_admin.message_user(request, done, messages.SUCCESS)
    return HttpResponseRedirect(page)


def _edit_view(request: HttpRequest, model_admin: admin.ModelAdmin, job: Job) -> HttpResponse:
    page = reverse("admin:queues_job_change", args=[job.pk])
    if not services.can_edit(job):
        model_admin.message_user(
            request,
            gettext("Only waiting, delayed, failed or cancelled jobs can be edited."),
            messages.ERROR,
        )
        return HttpResponseRedirect(page)
    form = JobEditForm(request.POST if request.method == "POST" else None, job=job)
    if request.method == "POST" and form.is_valid():
        try:
            services.edit_job(job.pk, **form.changes(), by=request.user)
        except EnqueueError as exc:
            form.add_error(None, str(exc))
        except InvalidJobState as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(page)
        else:
            model_admin.message_user(request, gettext("The job was changed."), messages.SUCCESS)
            return HttpResponseRedirect(page)
    retry = job.status in RETRYABLE
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "job": job,
        "form": form,
        "retry": retry,
        "title": gettext("Edit and retry job %(id)s") % {"id": job.pk}
        if retry
        else gettext("Edit job %(id)s") % {"id": job.pk},
    }
    return TemplateResponse(request, "admin/queues/job/edit.html", context)


def export_file(request: HttpRequest, model_admin: admin.ModelAdmin, pk) -> FileResponse:
    """An export-data job's CSV file, as an attachment."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    file = export_path(pk)
    if not file.is_file():
        raise Http404(gettext("no export file for this job"))
    return FileResponse(file.open("rb"), as_attachment=True, filename=f"export-{pk}.csv")
