"""Deadlines by the database's clock and workers told apart by a token: a host whose clock
is 60 s off, or a container sharing another's hostname and pid, takes nothing that is not
its own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from queues import enqueue
from queues.engine import identity
from queues.engine.claim import claim_jobs
from queues.engine.recovery import recover_stalled, release_unstarted, requeue_from_workers
from queues.models import JobStatus, Queue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clock_off_by(monkeypatch):
    """This process's clock, off by ``seconds`` from the database's."""
    real = timezone.now

    def shift(seconds: float):
        monkeypatch.setattr(timezone, "now", lambda: real() + timedelta(seconds=seconds))

    return shift


@pytest.mark.parametrize("skew", [-60, 60])
def test_a_skewed_host_neither_lets_its_locks_lapse_nor_steals_live_jobs(clock_off_by, skew):
    job = enqueue("platform.echo", {})
    queue = Queue.objects.get(name="default")  # lock_duration 30 s
    clock_off_by(skew)
    (claimed,) = claim_jobs(queue=queue, worker="slow-clock:1:aaaa", limit=1).jobs
    # Its own sweep, and one on a host with the right clock, both leave the live job alone.
    assert recover_stalled() == []
    clock_off_by(0)
    assert recover_stalled() == []
    job.refresh_from_db()
    assert (job.status, job.worker) == (JobStatus.ACTIVE, "slow-clock:1:aaaa")
    left = (job.locked_until - timezone.now()).total_seconds()
    assert 25 < left <= 31


def test_a_skewed_host_does_not_reset_the_shared_rate_window(clock_off_by):
    Queue.objects.filter(name="default").update(rate_limit_max=2, rate_limit_duration_ms=60_000)
    for _ in range(4):
        enqueue("platform.echo", {})
    queue = Queue.objects.get(name="default")
    assert len(claim_jobs(queue=queue, worker="a:1:aaaa", limit=5).jobs) == 2
    clock_off_by(120)  # this host thinks the minute is long over
    claim = claim_jobs(queue=queue, worker="b:1:bbbb", limit=5)
    assert claim.jobs == []
    assert 0 < claim.retry_after <= 60


def test_two_families_sharing_a_hostname_and_a_pid_do_not_fence_each_other(monkeypatch):
    job = enqueue("platform.echo", {})
    queue = Queue.objects.get(name="default")
    monkeypatch.setenv(identity.TOKEN_ENV, "aaaa")
    mine = identity.worker_id(7)
    claim_jobs(queue=queue, worker=mine, limit=1)
    # Another container: same hostname, same pid 7, its own token.
    monkeypatch.setenv(identity.TOKEN_ENV, "bbbb")
    other = identity.worker_id(7)
    assert other != mine
    assert requeue_from_workers(workers=[other], reason="its worker was stopped") == []
    assert release_unstarted(ids=[job.pk], worker=other) == []
    job.refresh_from_db()
    assert (job.status, job.worker, job.stalled_count) == (JobStatus.ACTIVE, mine, 0)
