"""The admin console: pages, query counts that do not grow with rows, actions, audit."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import enqueue, enqueue_many
from queues.engine.runner import drain
from queues.metrics import DURATION_BINS_MS, refresh_snapshots
from queues.models import AuditLog, Job, JobAttempt, JobStatus, Queue, QueueMinute, Worker
from tests.queues import handlers  # noqa: F401

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/queues/job/"


def make_jobs(n: int) -> None:
    enqueue_many(
        [
            {"name": "platform.echo", "payload": {"to": f"user{i}@example.com", "i": i}}
            for i in range(n)
        ]
    )
    enqueue_many([{"name": "platform.fail", "payload": {"permanent": True}} for _ in range(3)])
    drain("default")
    refresh_snapshots()


def make_queues(start: int, stop: int) -> None:
    """Queues with jobs in them (so each has a snapshot) and minute buckets."""
    now = timezone.now().replace(second=0, microsecond=0)
    bins = [0] * (len(DURATION_BINS_MS) + 1)
    for i in range(start, stop):
        queue = Queue.objects.create(
            name=f"q{i:03d}", concurrency=2, rate_limit_max=5, rate_limit_duration_ms=1000
        )
        enqueue("platform.echo", {"i": i}, queue=queue.name)
        QueueMinute.objects.bulk_create(
            QueueMinute(
                queue=queue,
                minute=now - timedelta(minutes=m),
                completed=2,
                failed=1,
                duration_ms_sum=30,
                histogram=[3, *bins[1:]],
            )
            for m in (0, 1, 61)  # two in the last hour, one only in the last day
        )
    refresh_snapshots()


def make_workers(start: int, stop: int) -> None:
    now = timezone.now()
    Worker.objects.bulk_create(
        Worker(
            id=f"host{i}:{100 + i}",
            hostname=f"host{i}",
            pid=100 + i,
            queues=["default", "email"] if i % 2 else ["*"],
            list_key=f"list{i}",
            concurrency=4,
            started_at=now,
            last_heartbeat=now - timedelta(seconds=3600 * (i % 2)),  # half of them stale
            last_activity=now,
        )
        for i in range(start, stop)
    )


def make_audit_rows(start: int, stop: int) -> None:
    user = User.objects.get(username="admin")
    AuditLog.objects.bulk_create(
        AuditLog(
            user=user if i % 2 else None,
            username="admin" if i % 2 else "",
            action="retry_jobs",
            target=f"job {i}",
            count=i,
            detail={"i": i},
        )
        for i in range(start, stop)
    )


def grow_jobs(start: int, stop: int) -> None:
    make_jobs(stop - start)


def grow_attempts(start: int, stop: int) -> None:
    # Attempt rows are history: failed attempts have one (a success lives on its job).
    enqueue_many(
        [{"name": "platform.fail", "payload": {"permanent": True}} for _ in range(stop - start)]
    )
    drain("default")


def make_dashboard_rows(start: int, stop: int) -> None:
    make_jobs(stop - start)
    make_queues(start, stop)
    make_workers(start, stop)


# Each page gets more rows of what it lists: jobs for the job pages, queues (with their
# snapshots and buckets) for the queue list, workers, audit rows, and all of it for the
# dashboard.
PAGES = [
    ("/admin/", make_dashboard_rows, Queue),
    ("/admin/queues/dashboard/", make_dashboard_rows, Queue),
    ("/admin/queues/dashboard/data/", make_dashboard_rows, Queue),
    (CHANGELIST, grow_jobs, Job),
    (CHANGELIST + "?status__exact=failed", grow_jobs, Job),
    (CHANGELIST + "?q=to%3Auser3%40example.com", grow_jobs, Job),
    ("/admin/queues/queue/", make_queues, Queue),
    ("/admin/queues/worker/", make_workers, Worker),
    ("/admin/queues/auditlog/", make_audit_rows, AuditLog),
    ("/admin/queues/jobattempt/", grow_attempts, JobAttempt),
]


@pytest.mark.parametrize(("url", "grow", "model"), PAGES, ids=[url for url, *_ in PAGES])
def test_pages_render_with_queries_that_do_not_grow_with_rows(admin_client, url, grow, model):
    grow(0, 5)
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(url).status_code == 200
    before = model.objects.count()
    grow(5, 65)
    assert model.objects.count() >= before + 60  # the page's own rows grew
    with CaptureQueriesContext(connection) as large:
        assert admin_client.get(url).status_code == 200
    assert len(small.captured_queries) <= 25
    assert len(large.captured_queries) == len(small.captured_queries), "\n".join(
        q["sql"] for q in large.captured_queries
    )


def test_job_detail_shows_payload_attempts_logs_and_dependencies(
    admin_client, django_assert_max_num_queries
):
    parent = enqueue("test.report", {"to": "alice@example.com"})
    child = enqueue("platform.echo", {}, depends_on=[parent.pk])
    failed = enqueue("platform.fail", {"message": "smtp down", "permanent": True})
    drain("default")
    with django_assert_max_num_queries(25):
        page = admin_client.get(f"{CHANGELIST}{parent.pk}/change/").content.decode()
    assert "alice@example.com" in page and "validating" in page  # payload and log line
    # The completing attempt, from the job's row: number, outcome, worker, start to the ms.
    done = Job.objects.get(pk=parent.pk)
    assert "<td>1</td><td>Completed</td><td>" + done.worker + "</td>" in page
    local = timezone.localtime(done.started_at)
    assert f'<time datetime="{done.started_at.isoformat()}"' in page
    assert ">" + local.strftime("%H:%M:%S.%f")[:-3] + "</time>" in page  # to the ms
    assert str(child.pk)[:13] in page  # dependants
    page = admin_client.get(f"{CHANGELIST}{failed.pk}/change/").content.decode()
    assert "PermanentError: smtp down" in page and "Traceback" in page


def test_payload_search_and_id_search(admin_client):
    make_jobs(10)
    job = Job.objects.get(payload__i=7)
    page = admin_client.get(CHANGELIST, {"q": "to:user7@example.com"}).content.decode()
    assert str(job.pk)[:13] in page and page.count("platform.echo</td>") == 1
    page = admin_client.get(CHANGELIST, {"q": "i:7"}).content.decode()
    assert str(job.pk)[:13] in page
    page = admin_client.get(CHANGELIST, {"q": str(job.pk)}).content.decode()
    assert str(job.pk)[:13] in page


def post_action(client, action, queryset=None, select_across=False, url=CHANGELIST, **extra):
    ids = [str(pk) for pk in (queryset or Job.objects.all()).values_list("pk", flat=True)][:1]
    data = {
        "action": action,
        "_selected_action": ids,
        "select_across": "1" if select_across else "0",
    }
    data.update(extra)
    return client.post(url, data, follow=True)


def test_retry_all_matching_the_filter_is_one_bulk_action_and_is_audited(admin_client):
    enqueue_many([{"name": "platform.fail", "payload": {"permanent": True}} for _ in range(120)])
    enqueue("platform.echo", {})
    drain("default")
    # "Select all 120 matching" on a filtered changelist: the whole filter, not one page.
    response = post_action(
        admin_client,
        "retry_selected",
        Job.objects.filter(status="failed"),
        select_across=True,
        url=CHANGELIST + "?status__exact=failed",
    )
    assert response.status_code == 200
    assert Job.objects.filter(status=JobStatus.WAITING).count() == 120
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 1
    log = AuditLog.objects.get()
    assert (log.action, log.count, log.username) == ("retry_jobs", 120, "admin")


def test_cancel_promote_and_delete_actions(admin_client):
    delayed = enqueue("platform.echo", {}, delay=3600)
    post_action(admin_client, "promote_selected", Job.objects.filter(pk=delayed.pk))
    assert Job.objects.get(pk=delayed.pk).status == JobStatus.WAITING
    post_action(admin_client, "cancel_selected", Job.objects.filter(pk=delayed.pk))
    assert Job.objects.get(pk=delayed.pk).status == JobStatus.CANCELLED
    post_action(admin_client, "delete_selected_jobs", Job.objects.filter(pk=delayed.pk))
    assert not Job.objects.exists()
    assert list(AuditLog.objects.order_by("id").values_list("action", "count")) == [
        ("promote_jobs", 1),
        ("cancel_jobs", 1),
        ("delete_jobs", 1),
    ]


def test_queue_actions_pause_resume_empty_and_clean(admin_client):
    enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(4)])
    default = Queue.objects.filter(name="default")
    post_action(admin_client, "pause_selected", default, url="/admin/queues/queue/")
    assert Queue.objects.get(name="default").paused
    post_action(admin_client, "resume_selected", default, url="/admin/queues/queue/")
    assert not Queue.objects.get(name="default").paused
    post_action(admin_client, "empty_selected", default, url="/admin/queues/queue/")
    assert not Job.objects.exists()
    enqueue("platform.echo", {})
    drain("default")
    page = post_action(admin_client, "clean_selected", default, url="/admin/queues/queue/")
    assert b"Older than" in page.content  # the intermediate form
    post_action(
        admin_client,
        "clean_selected",
        default,
        url="/admin/queues/queue/",
        apply="1",
        status="completed",
        grace_ms="0",
        limit="10",
    )
    assert not Job.objects.exists()
    assert [a for (a,) in AuditLog.objects.order_by("id").values_list("action")] == [
        "pause_queues",
        "resume_queues",
        "empty_queues",
        "clean_queues",
    ]


def test_operator_group_sees_everything_and_changes_nothing(client):
    from queues.apps import grant_operator_views

    Group.objects.get_or_create(name="operator")
    grant_operator_views(sender=None)
    user = User.objects.create_user("olga", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client.force_login(user)
    failed = enqueue("platform.fail", {"permanent": True})
    drain("default")
    for url in [
        "/admin/queues/dashboard/",
        CHANGELIST,
        f"{CHANGELIST}{failed.pk}/change/",
        "/admin/queues/queue/",
        "/admin/scheduling/scheduledjob/",
    ]:
        assert client.get(url).status_code == 200, url
    response = post_action(client, "retry_selected", Job.objects.all(), select_across=True)
    assert Job.objects.get().status == JobStatus.FAILED
    assert not AuditLog.objects.exists()
    assert response.status_code == 200
    assert not user.has_perm("queues.retry_job")
    assert (
        Permission.objects.filter(group__name="operator")
        .exclude(codename__startswith="view_")
        .count()
        == 0
    )


def test_the_dashboard_flags_a_queue_with_waiting_jobs_and_no_live_worker(admin_client):
    from django.utils import timezone

    from queues.models import Worker

    enqueue("platform.echo", {}, queue="sms")
    enqueue("platform.echo", {}, queue="email")
    refresh_snapshots()
    now = timezone.now()
    Worker.objects.create(
        id="h:1",
        hostname="h",
        pid=1,
        queues=["email"],
        list_key="x",
        started_at=now,
        last_heartbeat=now,
    )
    data = admin_client.get("/admin/queues/dashboard/data/").json()
    alerts = {q["name"]: q["alerts"] for q in data["queues"]}
    assert "no live worker" in alerts["sms"]
    assert "no live worker" not in alerts["email"]
