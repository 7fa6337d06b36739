"""The engine's hottest statements (single enqueue, claim, finalize) are bound on the
server and prepared once per connection; behind a transaction pooler they are bound but
never prepared. Real Postgres, the real enqueue and drain."""

from __future__ import annotations

import pytest
from django.db import connection

from queues import enqueue
from queues.engine.runner import drain
from queues.models import Job, JobStatus

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 6  # past psycopg's prepare_threshold (5, from settings)


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _run_jobs() -> list[Job]:
    jobs = []
    for i in range(RUNS):
        jobs.append(enqueue("platform.echo", {"i": i}))
        assert drain("default") == 1
    return jobs


def test_enqueue_claim_and_finalize_are_prepared_on_the_connection():
    jobs = _run_jobs()
    statements = _prepared()
    assert any(s.startswith("INSERT INTO queues_job") for s in statements)
    assert any("FOR UPDATE SKIP LOCKED" in s and "SET status = 'active'" in s for s in statements)
    assert any("FROM unnest(" in s and "FOR NO KEY UPDATE" in s for s in statements)
    # Prepared statements change how the rows are written, not what they hold.
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert (job.status, job.attempts_made) == (JobStatus.COMPLETED, 1)
        assert job.result == job.payload  # platform.echo returns its payload
        assert job.started_at <= job.finished_at and job.worker


def test_behind_a_transaction_pooler_nothing_is_prepared(monkeypatch):
    # What settings give the connection for DB_POOLER=transaction.
    connection.ensure_connection()
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    jobs = _run_jobs()
    assert _prepared() == []
    assert (
        Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.COMPLETED).count() == RUNS
    )
