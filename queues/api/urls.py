from django.urls import path

from queues.api import views
from queues.api.wait import job_wait

queues = views.QueueViewSet
jobs = views.JobViewSet
NAME = "<str:name>"
ID = "<uuid:pk>"

urlpatterns = [
    path("queues/", queues.as_view({"get": "overview"}), name="queue-list"),
    path(
        f"queues/{NAME}/",
        queues.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="queue-detail",
    ),
    *[
        path(f"queues/{NAME}/{op}/", queues.as_view({"post": op}), name=f"queue-{op}")
        for op in ("pause", "resume", "empty", "clean")
    ],
    path("jobs/", jobs.as_view({"get": "listing", "post": "create"}), name="job-list"),
    path("jobs/bulk/", jobs.as_view({"post": "bulk"}), name="job-bulk"),
    path("jobs/retry/", jobs.as_view({"post": "retry_matching"}), name="job-retry-matching"),
    path("jobs/cancel/", jobs.as_view({"post": "cancel_matching"}), name="job-cancel-matching"),
    path(f"jobs/{ID}/", jobs.as_view({"get": "retrieve", "delete": "destroy"}), name="job-detail"),
    *[
        path(f"jobs/{ID}/{op}/", jobs.as_view({"post": op}), name=f"job-{op}")
        for op in ("retry", "cancel", "promote")
    ],
    path(f"jobs/{ID}/wait/", job_wait, name="job-wait"),
    path("workers/", views.WorkerList.as_view(), name="worker-list"),
    path("stats/", views.Stats.as_view(), name="stats"),
]
