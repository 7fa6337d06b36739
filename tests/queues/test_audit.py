"""The services write the audit trail, whoever calls them: the same row for a change made
from the admin, the API, a management command or Python code."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from queues import services
from queues.engine.runner import drain
from queues.exceptions import InvalidJobState
from queues.models import AuditLog, Job, JobStatus, Queue

pytestmark = pytest.mark.django_db


def rows():
    return list(
        AuditLog.objects.order_by("id").values_list("action", "target", "count", "username")
    )


def test_python_callers_leave_the_same_trail_with_a_label_or_a_user():
    user = User.objects.create_user("ops")
    failed = services.enqueue("platform.fail", {"permanent": True})
    delayed = services.enqueue("platform.echo", {}, delay=3600)
    drain("default")
    services.retry_job(failed.pk, by="manage.py")
    services.cancel_job(failed.pk, by=user)
    services.promote_job(delayed.pk)
    services.pause_queue("sms", by="scheduler")
    services.resume_queue("sms", by="scheduler")
    services.update_queue("sms", changes={"description": "texts"}, by=user)
    assert rows() == [
        ("retry_jobs", str(failed.pk), 1, "manage.py"),
        ("cancel_jobs", str(failed.pk), 1, "ops"),
        ("promote_jobs", str(delayed.pk), 1, ""),
        ("pause_queues", "sms", 1, "scheduler"),
        ("resume_queues", "sms", 1, "scheduler"),
        ("update_queue", "sms", 1, "ops"),
    ]
    assert AuditLog.objects.get(action="update_queue").detail == {"fields": ["description"]}
    assert AuditLog.objects.get(action="cancel_jobs").user == user
    assert Queue.objects.get(name="sms").description == "texts"


def test_bulk_services_record_count_and_detail():
    jobs = services.enqueue_many([{"name": "platform.echo", "payload": {}} for _ in range(3)])
    count = services.cancel_jobs(Job.objects.filter(pk__in=[j.pk for j in jobs]), by="api")
    deleted, skipped = services.delete_jobs(Job.objects.all(), by="api", filter={"q": "x"})
    assert (count, deleted, skipped) == (3, 3, 0)
    log = AuditLog.objects.get(action="delete_jobs")
    assert (log.count, log.username, log.detail) == (3, "api", {"skipped": 0, "filter": {"q": "x"}})


def test_a_refused_change_writes_no_audit_row_and_changes_nothing():
    job = services.enqueue("platform.echo", {})
    with pytest.raises(InvalidJobState, match="only failed or cancelled jobs"):
        services.retry_job(job.pk, by="manage.py")
    with pytest.raises(InvalidJobState, match="only delayed jobs can be promoted"):
        services.promote_job(job.pk, by="manage.py")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.ACTIVE, worker="w:1")
    with pytest.raises(InvalidJobState, match="is active; cancel it first"):
        services.delete_job(job.pk, by="manage.py")
    assert Job.objects.get(pk=job.pk).status == JobStatus.ACTIVE
    assert not AuditLog.objects.exists()


def test_an_operator_enqueue_is_audited_and_application_enqueues_are_not(admin_client):
    services.enqueue("platform.echo", {})
    assert not AuditLog.objects.exists()
    call_command("enqueue", "platform.echo", "--payload", "{}")
    by_command = Job.objects.order_by("created_at").last()
    response = admin_client.post(
        "/api/v1/jobs/", {"name": "platform.echo", "payload": {}}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert rows() == [
        ("enqueue", str(by_command.pk), 1, "manage.py"),
        ("enqueue", response.json()["id"], 1, "admin"),
    ]
    # Deduplicated to the existing job by its unique_key: audited, but nothing created.
    services.enqueue("platform.echo", {}, unique_key="k")
    services.enqueue("platform.echo", {}, unique_key="k", by="manage.py")
    assert AuditLog.objects.order_by("id").last().count == 0
