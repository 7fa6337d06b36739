"""Resolving a finished parent's dependants is set-based (L2): a few statements per level
of the cascade, however many children a parent has, with the same outcome as before."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from queues import enqueue, enqueue_many
from queues.models import Job, JobStatus
from queues.services.dependencies import resolve_dependants

pytestmark = pytest.mark.django_db


def finish(parent: Job, status: str) -> tuple[list[str], int]:
    """Finish ``parent`` as finalize does and resolve its dependants; returns the queues
    to wake and how many queries the resolution took."""
    with transaction.atomic():
        Job.objects.filter(pk=parent.pk).update(status=status, finished_at=timezone.now())
        with CaptureQueriesContext(connection) as queries:
            wake = resolve_dependants([parent.pk])
    return wake, len(queries)


def fan_out(children: int, *, grandchildren: bool = False) -> tuple[Job, list[Job], list[Job]]:
    parent = enqueue("platform.echo", {}, queue="default")
    kids = enqueue_many(
        [
            {"name": "platform.echo", "queue": "email", "depends_on": [parent.pk]}
            for _ in range(children)
        ]
    )
    grand = []
    if grandchildren:
        grand = enqueue_many(
            [{"name": "platform.echo", "queue": "sms", "depends_on": [k.pk]} for k in kids]
        )
    return parent, kids, grand


def statuses(jobs: list[Job]) -> set[str]:
    return set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True))


def test_unblocking_many_children_takes_as_many_queries_as_unblocking_few():
    counts = {}
    for size in (50, 500):
        parent, kids, _ = fan_out(size)
        wake, counts[size] = finish(parent, JobStatus.COMPLETED)
        assert wake == ["email"]
        assert statuses(kids) == {JobStatus.WAITING}
    assert counts[500] == counts[50] <= 6


def test_a_failure_cascade_takes_the_same_queries_for_many_children_as_for_few():
    counts = {}
    for size in (50, 500):
        parent, kids, grand = fan_out(size, grandchildren=True)
        wake, counts[size] = finish(parent, JobStatus.FAILED)
        assert wake == []
        assert statuses(kids) == statuses(grand) == {JobStatus.FAILED}
        kid = Job.objects.get(pk=kids[-1].pk)
        assert kid.error == f"dependency {parent.pk} failed; this job needed it to complete"
        assert kid.finished_at is not None
        assert Job.objects.get(pk=grand[0].pk).error == (
            f"dependency {kids[0].pk} failed; this job needed it to complete"
        )
    assert counts[500] == counts[50] <= 12


def test_a_mixed_level_fails_waits_delays_and_leaves_the_rest_blocked():
    parent = enqueue("platform.echo", {}, queue="default")
    failed_parent = enqueue("platform.echo", {}, queue="default")
    other = enqueue("platform.echo", {}, queue="default")  # stays unfinished
    Job.objects.filter(pk=failed_parent.pk).update(status=JobStatus.CANCELLED)
    later = timezone.now() + timedelta(hours=1)
    ready, delayed, broken, optional, waiting_on_other = enqueue_many(
        [
            {"name": "platform.echo", "queue": "email", "depends_on": [parent.pk]},
            {"name": "platform.echo", "queue": "sms", "depends_on": [parent.pk]},
            {"name": "platform.echo", "depends_on": [parent.pk, failed_parent.pk]},
            {
                "name": "platform.echo",
                "queue": "sms",
                "depends_on": [parent.pk, failed_parent.pk],
                "dependencies_mode": "optional",
            },
            {"name": "platform.echo", "depends_on": [parent.pk, other.pk]},
        ]
    )
    Job.objects.filter(pk=delayed.pk).update(run_at=later)
    wake, _ = finish(parent, JobStatus.COMPLETED)
    assert wake == ["email", "sms"]
    got = {j.pk: j for j in Job.objects.filter(pk__in=[ready.pk, delayed.pk, broken.pk])}
    assert got[ready.pk].status == JobStatus.WAITING
    assert (got[delayed.pk].status, got[delayed.pk].run_at) == (JobStatus.DELAYED, later)
    assert got[broken.pk].status == JobStatus.FAILED
    assert got[broken.pk].error == (
        f"dependency {failed_parent.pk} cancelled; this job needed it to complete"
    )
    assert statuses([optional]) == {JobStatus.WAITING}
    assert statuses([waiting_on_other]) == {JobStatus.BLOCKED}
