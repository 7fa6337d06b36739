"""CSV exports (streamed, progress by rows, downloadable from the admin) and the reports
the system schedules email to ADMINS."""

import csv

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queues import enqueue, enqueue_many, exports
from queues.engine.runner import drain
from queues.exports import PROGRESS_EVERY, export_path
from queues.models import Job, JobStatus
from scheduling import services as schedules
from scheduling.system import sync_system_schedules

pytestmark = pytest.mark.django_db


def test_jobs_export_streams_a_csv_with_progress_and_downloads_from_the_admin(
    admin_client, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path
    enqueue_many(
        [
            {"name": "platform.echo", "payload": {"i": i}, "queue": "email"}
            for i in range(PROGRESS_EVERY * 2 + 5)
        ]
    )
    export = enqueue("export-data", {"kind": "jobs", "filters": {"queue": "email"}})
    assert export.queue.name == "data-export" and export.priority == 7
    drain("data-export")
    export.refresh_from_db()
    assert export.status == JobStatus.COMPLETED, export.error
    assert export.result == {"kind": "jobs", "rows": 2005, "file": f"{export.pk}.csv"}
    with export_path(export.pk).open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:4] == ["id", "name", "queue", "status"] and len(rows) == 2006
    assert {r[2] for r in rows[1:]} == {"email"}
    page = admin_client.get(f"/admin/queues/job/{export.pk}/change/").content.decode()
    assert f"/admin/queues/job/{export.pk}/export/" in page
    download = admin_client.get(f"/admin/queues/job/{export.pk}/export/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).decode().count("\n") == 2006


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"kind": "planets"}, "unknown export 'planets'"),
        ({"kind": "jobs", "filters": {"colour": "red"}}, "unknown filters for jobs"),
    ],
)
def test_bad_exports_fail_permanently(payload, message, settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path
    job = enqueue("export-data", payload)
    drain("data-export")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and message in job.error
    assert list(tmp_path.iterdir()) == []


def test_reports_are_emailed_to_admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    enqueue("platform.echo", {})
    enqueue("platform.fail", {"permanent": True})
    drain("default")
    sync_system_schedules()
    from scheduling.models import ScheduledJob

    for name in ("system.hourly-report", "system.daily-report"):
        schedules.run_now(ScheduledJob.objects.get(name=name))
    drain("report-generation")
    assert set(
        Job.objects.filter(queue__name="report-generation").values_list("status", flat=True)
    ) == {"completed"}
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == ["[jobplatform] daily report", "[jobplatform] hourly report"]
    body = mail.outbox[0].body
    assert "default" in body and mail.outbox[0].to == ["ops@example.com"]


def test_devices_export(settings, tmp_path):
    from devices.services import create_device

    settings.EXPORT_ROOT = tmp_path
    create_device(name="Pixel")
    create_device(name="Galaxy")
    job = enqueue("export-data", {"kind": "devices"})
    drain("data-export")
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    with export_path(job.pk).open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["id", "name", "status"]
    assert sorted(r[1] for r in rows[1:]) == ["Galaxy", "Pixel"]


def test_an_export_reads_in_keyset_chunks_whatever_the_cursor(monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 3)
    jobs = enqueue_many([{"name": "platform.echo", "payload": {"i": i}} for i in range(8)])
    export = exports.Export.from_queryset(Job.objects.all(), ["id", "name"])
    with CaptureQueriesContext(connection) as queries:
        rows = list(export.rows)
    assert rows == [[j.pk, "platform.echo"] for j in sorted(jobs, key=lambda j: j.pk)]
    # ceil(8 / 3) pages and one that finds the end, each asking for at most 3 rows.
    assert len(queries.captured_queries) == 4
    assert all("LIMIT 3" in q["sql"] for q in queries.captured_queries)
    assert export.total == 8
