from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from queues.durations import duration_ms
from queues.ids import uuid7
from queues.priority import MAX_PRIORITY, MIN_PRIORITY, Priority


def default_backoff() -> dict:
    # The default retry backoff: exponential, starting at 2 s.
    return {"type": "exponential", "delay": 2000}


class Queue(models.Model):
    """A named queue: its defaults, limits and retention. Jobs always belong to one."""

    name = models.SlugField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True, default="")
    paused = models.BooleanField(_("paused"), default=False, db_default=False)

    default_priority = models.PositiveSmallIntegerField(
        _("default priority"), default=Priority.NORMAL
    )
    default_attempts = models.PositiveIntegerField(_("default attempts"), default=3)
    default_backoff = models.JSONField(_("default backoff"), default=default_backoff)
    default_timeout = models.FloatField(
        _("default timeout"),
        null=True,
        blank=True,
        help_text=_("Seconds; empty means no timeout."),
    )

    # Empty means no limit; 0 is refused (it would read as "no limit" and surprise).
    rate_limit_max = models.PositiveIntegerField(
        _("rate limit max"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("At most this many jobs start per rate-limit duration."),
    )
    rate_limit_duration_ms = models.PositiveIntegerField(
        _("rate limit duration ms"), null=True, blank=True, validators=[MinValueValidator(1)]
    )
    concurrency = models.PositiveIntegerField(
        _("concurrency"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("At most this many active jobs at once; empty: no limit."),
    )
    lock_duration = models.PositiveIntegerField(
        _("lock duration"),
        default=30,
        help_text=_("Seconds an active job's lock lasts before it counts as stalled."),
    )
    max_stalled = models.PositiveIntegerField(
        _("max stalled"), default=3, help_text=_("Times a job may stall before it is failed.")
    )

    keep_completed_count = models.PositiveIntegerField(
        _("keep completed count"), null=True, blank=True, default=1000
    )
    keep_completed_age = models.PositiveIntegerField(
        _("keep completed age"), null=True, blank=True, default=24 * 3600, help_text=_("Seconds.")
    )
    keep_failed_age = models.PositiveIntegerField(
        _("keep failed age"), null=True, blank=True, default=7 * 24 * 3600, help_text=_("Seconds.")
    )

    # The current fixed rate-limit window (claims of rate-limited queues lock this row).
    rate_window_start = models.DateTimeField(
        _("rate window start"), null=True, blank=True, editable=False
    )
    rate_window_count = models.PositiveIntegerField(
        _("rate window count"), default=0, db_default=0, editable=False
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        permissions = [("pause_queue", _("Can pause and resume queues"))]

    def __str__(self) -> str:
        return self.name

    # What page views show of a queue comes from its snapshot (refreshed by the
    # maintenance loop), never from counting jobs; select_related("snapshot") first.
    def snapshot_counts(self) -> dict[str, int]:
        snapshot = getattr(self, "snapshot", None)
        counts = snapshot.counts if snapshot else {}
        return {status.value: counts.get(status.value, 0) for status in JobStatus}

    def latency_seconds(self, now) -> float:
        """Age of the queue's oldest waiting job (0 when none waits)."""
        snapshot = getattr(self, "snapshot", None)
        oldest = snapshot.oldest_waiting_at if snapshot else None
        return (now - oldest).total_seconds() if oldest else 0.0


class JobStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    DELAYED = "delayed", _("Delayed")
    BLOCKED = "blocked", _("Blocked")
    ACTIVE = "active", _("Active")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


# A status as a word inside a sentence ("job ... is completed"): the value in English.
_STATUS_WORDS = {
    JobStatus.WAITING.value: pgettext_lazy("job status in a sentence", "waiting"),
    JobStatus.DELAYED.value: pgettext_lazy("job status in a sentence", "delayed"),
    JobStatus.BLOCKED.value: pgettext_lazy("job status in a sentence", "blocked"),
    JobStatus.ACTIVE.value: pgettext_lazy("job status in a sentence", "active"),
    JobStatus.COMPLETED.value: pgettext_lazy("job status in a sentence", "completed"),
    JobStatus.FAILED.value: pgettext_lazy("job status in a sentence", "failed"),
    JobStatus.CANCELLED.value: pgettext_lazy("job status in a sentence", "cancelled"),
}


def status_word(status: str) -> str:
    """``status`` (a JobStatus value) as a word of the active language, for messages."""
    word = _STATUS_WORDS.get(status)
    return str(word) if word is not None else str(status)


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
UNFINISHED_STATUSES = frozenset(
    {JobStatus.WAITING, JobStatus.DELAYED, JobStatus.BLOCKED, JobStatus.ACTIVE}
)
# Jobs a worker still holds: running, or cancelled while their handler is still stopping.
# (A completed job keeps the name of the worker that ran it; it holds nothing.)
HELD_BY_WORKER = Q(status=JobStatus.ACTIVE) | (Q(status=JobStatus.CANCELLED) & ~Q(worker=""))


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False, verbose_name=_("id"))
    # No index of its own: job_queue_status_idx and job_claim_idx lead with queue_id, and
    # every index of this table is written again by each claim and each finalize.
    queue = models.ForeignKey(
        Queue,
        on_delete=models.PROTECT,
        related_name="jobs",
        db_index=False,
        verbose_name=_("queue"),
    )
    name = models.CharField(
        _("name"), max_length=200, help_text=_("The handler that runs this job.")
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.WAITING
    )
    priority = models.PositiveSmallIntegerField(_("priority"), default=Priority.NORMAL)

    attempts_made = models.PositiveIntegerField(
        _("attempts made"),
        default=0,
        db_default=0,
        help_text=_("Attempts started, ever; numbers the attempt rows."),
    )
    attempts_base = models.PositiveIntegerField(
        _("attempts base"),
        default=0,
        db_default=0,
        help_text=_("Attempts that do not count against max_attempts (stalls, manual retries)."),
    )
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=3)
    backoff = models.JSONField(_("backoff"), default=default_backoff)
    timeout = models.FloatField(_("timeout"), null=True, blank=True, help_text=_("Seconds."))

    run_at = models.DateTimeField(
        _("run at"), null=True, blank=True, help_text=_("When a delayed job is due.")
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0, db_default=0)
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True, default="")
    stalled_count = models.PositiveIntegerField(_("stalled count"), default=0, db_default=0)
    unique_key = models.CharField(
        _("unique key"),
        max_length=200,
        null=True,
        blank=True,
        help_text=_("At most one unfinished job per queue has a given key."),
    )
    has_dependants = models.BooleanField(
        _("has dependants"), default=False, db_default=False, editable=False
    )
    webhook_url = models.URLField(
        _("webhook URL"),
        max_length=500,
        blank=True,
        default="",
        db_default="",
        help_text=_("Every status change is POSTed here (signed), as a job on 'notification'."),
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        permissions = [
            ("retry_job", _("Can retry jobs")),
            ("cancel_job", _("Can cancel jobs")),
            ("promote_job", _("Can run delayed jobs now")),
            ("edit_job", _("Can edit a job's payload, queue, priority and delay")),
        ]
        # Two more indexes are Postgres-only and live in their migrations, not here (SQLite
        # would rebuild them with the table): job_payload_gin (0005, payload containment,
        # the job search's user.id:7) and job_failed_error_trgm (0015, pg_trgm on failed
        # jobs' UPPER(error), the job search's error:). See queues/search.py.
        indexes = [
            # Serves the claim query in queues/engine/claim.py:
            #   ... WHERE queue_id = %s AND status = 'waiting'
            #   ORDER BY priority, created_at LIMIT n FOR UPDATE SKIP LOCKED
            # and each queue's oldest waiting job (queues/metrics.py, one probe a priority).
            models.Index(
                fields=["queue", "priority", "created_at"],
                condition=Q(status="waiting"),
                name="job_claim_idx",
            ),
            # Serves delayed-job promotion in queues/engine/maintenance.py (status='delayed', due).
            models.Index(
                fields=["run_at"], condition=Q(status="delayed"), name="job_delayed_due_idx"
            ),
            # Serves the stalled-lock sweep (status='active' AND locked_until < now).
            models.Index(
                fields=["locked_until"], condition=Q(status="active"), name="job_active_lock_idx"
            ),
            # Serves the same sweep's look for cancelled jobs whose worker died while they
            # stopped (status='cancelled' AND worker <> '' AND locked_until < now): without
            # it, each sweep visits every cancelled job kept for retention.
            models.Index(
                fields=["locked_until"],
                condition=Q(status="cancelled") & ~Q(worker=""),
                name="job_cancelled_lock_idx",
            ),
            # Per-queue counts by status.
            models.Index(fields=["queue", "status"], name="job_queue_status_idx"),
            # The job changelist: newest first, all jobs or one status.
            models.Index(fields=["-created_at"], name="job_created_idx"),
            models.Index(fields=["status", "-created_at"], name="job_status_created_idx"),
            models.Index(fields=["name", "-created_at"], name="job_name_created_idx"),
            # Retention and "clean": finished jobs of a queue by age.
            models.Index(
                fields=["queue", "status", "finished_at"],
                condition=Q(status__in=["completed", "failed", "cancelled"]),
                name="job_finished_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=MIN_PRIORITY) & Q(priority__lte=MAX_PRIORITY),
                name="job_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=100), name="job_progress_range"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in JobStatus]), name="job_status_valid"
            ),
            # enqueue(unique_key=...) relies on this: a second unfinished job with the key
            # cannot exist, whatever races between callers.
            models.UniqueConstraint(
                fields=["queue", "unique_key"],
                condition=Q(unique_key__isnull=False)
                & Q(status__in=["waiting", "delayed", "blocked", "active"]),
                name="job_unique_key_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - (self.attempts_made - self.attempts_base), 0)

    def attempt_history(self) -> list[JobAttempt]:
        """Every attempt of this job, in order. Attempt rows keep the history (failures,
        retries, stalls, discarded late reports); the attempt that completed a job lives
        on the job's own row (its worker, start and finish), as most jobs have no other:
        it is added here, unsaved. Uses ``attempts`` prefetched, if it was."""
        rows = sorted(self.attempts.all(), key=lambda a: a.number)
        last = rows[-1].number if rows else 0
        if self.status == JobStatus.COMPLETED and self.started_at and last < self.attempts_made:
            rows.append(
                JobAttempt(
                    job=self,
                    number=self.attempts_made,
                    worker=self.worker,
                    started_at=self.started_at,
                    finished_at=self.finished_at,
                    duration_ms=duration_ms(self.started_at, self.finished_at),
                    outcome=AttemptOutcome.COMPLETED,
                )
            )
        return rows


class JobDependency(models.Model):
    """``job`` may start only when ``parent`` has finished (flows)."""

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="dependency_links", verbose_name=_("job")
    )
    parent = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="dependant_links", verbose_name=_("parent")
    )
    required = models.BooleanField(
        _("required"),
        default=True,
        help_text=_("A failed or cancelled required parent fails the job."),
    )

    class Meta:
        verbose_name = _("job dependency")
        verbose_name_plural = _("job dependencies")
        constraints = [
            models.UniqueConstraint(fields=["job", "parent"], name="job_dependency_unique"),
        ]
        indexes = [models.Index(fields=["parent"], name="job_dependency_parent_idx")]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.parent_id}"


class RateLimitWindow(models.Model):
    """A fixed window of a keyed rate limit, when no Redis is configured."""

    key = models.CharField(_("key"), primary_key=True, max_length=250)
    window_start = models.DateTimeField(_("window start"))
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("rate limit window")
        verbose_name_plural = _("rate limit windows")

    def __str__(self) -> str:
        return self.key


class AttemptOutcome(models.TextChoices):
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    TIMEOUT = "timeout", _("Timeout")
    STALLED = "stalled", _("Stalled")
    CANCELLED = "cancelled", _("Cancelled")


class JobAttempt(models.Model):
    """One row per try of a job. History: written by the runner, never edited."""

    # No index of its own: job_attempt_unique_number leads with job_id.
    job = models.ForeignKey(
        Job,
        on_delete=models.CASCADE,
        related_name="attempts",
        db_index=False,
        verbose_name=_("job"),
    )
    number = models.PositiveIntegerField(_("number"))
    worker = models.CharField(_("worker"), max_length=200, blank=True, default="")
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration ms"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=AttemptOutcome.choices)
    error = models.TextField(_("error"), blank=True, default="")
    traceback = models.TextField(_("traceback"), blank=True, default="")

    class Meta:
        ordering = ["job", "number"]
        verbose_name = _("job attempt")
        verbose_name_plural = _("job attempts")
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="job_attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number}: {self.outcome}"


class JobLog(models.Model):
    """A line a handler wrote with ``ctx.log``; ordered by id."""

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="logs", verbose_name=_("job")
    )
    attempt = models.PositiveIntegerField(_("attempt"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    message = models.TextField(_("message"))

    class Meta:
        ordering = ["job", "id"]
        verbose_name = _("job log")
        verbose_name_plural = _("job logs")
        indexes = [models.Index(fields=["job", "id"], name="job_log_job_idx")]

    def __str__(self) -> str:
        return self.message[:80]


class QueueMinute(models.Model):
    """Per queue and minute: finished jobs and a duration histogram, updated by the batch
    finalize (one upsert per batch). The dashboard's charts, failure rate and durations
    read these buckets, never the jobs table."""

    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="minutes", verbose_name=_("queue")
    )
    minute = models.DateTimeField(_("minute"))
    completed = models.PositiveIntegerField(_("completed"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    retried = models.PositiveIntegerField(_("retried"), default=0)
    duration_ms_sum = models.BigIntegerField(_("duration ms sum"), default=0)
    # Counts per duration bin (upper bounds in queues.metrics.DURATION_BINS_MS).
    histogram = models.JSONField(_("histogram"), default=list)

    class Meta:
        verbose_name = _("queue minute")
        verbose_name_plural = _("queue minutes")
        constraints = [
            models.UniqueConstraint(fields=["queue", "minute"], name="queue_minute_unique"),
        ]
        indexes = [models.Index(fields=["minute"], name="queue_minute_minute_idx")]

    def __str__(self) -> str:
        return f"{self.queue_id} {self.minute:%Y-%m-%d %H:%M}"


class HandlerStats(models.Model):
    """Per queue and handler, since the beginning: attempts by outcome and a duration
    histogram. Monotonic counters for Prometheus, whatever the number of workers."""

    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="handler_stats", verbose_name=_("queue")
    )
    name = models.CharField(_("name"), max_length=200)
    completed = models.PositiveBigIntegerField(_("completed"), default=0)
    failed = models.PositiveBigIntegerField(_("failed"), default=0)
    retried = models.PositiveBigIntegerField(_("retried"), default=0)
    duration_ms_sum = models.BigIntegerField(_("duration ms sum"), default=0)
    histogram = models.JSONField(_("histogram"), default=list)

    class Meta:
        verbose_name = _("handler stats")
        verbose_name_plural = _("handler stats")
        constraints = [
            models.UniqueConstraint(fields=["queue", "name"], name="handler_stats_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id} {self.name}"


class HandlerHour(models.Model):
    """Per queue, handler and hour: finished attempts and a duration histogram, kept for
    72 hours (pruned by retention). The per-handler metrics page reads only these."""

    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="handler_hours", verbose_name=_("queue")
    )
    name = models.CharField(_("name"), max_length=200)
    hour = models.DateTimeField(_("hour"))
    completed = models.PositiveIntegerField(_("completed"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    retried = models.PositiveIntegerField(_("retried"), default=0)
    duration_ms_sum = models.BigIntegerField(_("duration ms sum"), default=0)
    # Counts per duration bin (upper bounds in queues.metrics.DURATION_BINS_MS).
    histogram = models.JSONField(_("histogram"), default=list)

    class Meta:
        verbose_name = _("handler hour")
        verbose_name_plural = _("handler hours")
        constraints = [
            models.UniqueConstraint(fields=["queue", "name", "hour"], name="handler_hour_unique"),
        ]
        indexes = [models.Index(fields=["hour"], name="handler_hour_hour_idx")]

    def __str__(self) -> str:
        return f"{self.queue_id} {self.name} {self.hour:%Y-%m-%d %H:00}"


class SchedulerHeartbeat(models.Model):
    """A running ``runscheduler`` copy and its last maintenance tick."""

    id = models.CharField(_("id"), primary_key=True, max_length=200, help_text=_("host:pid"))
    last_tick = models.DateTimeField(_("last tick"))

    class Meta:
        verbose_name = _("scheduler heartbeat")
        verbose_name_plural = _("scheduler heartbeats")

    def __str__(self) -> str:
        return self.id


class QueueSnapshot(models.Model):
    """Job counts by status of one queue, refreshed by the maintenance loop every few
    seconds, so no page view ever counts the jobs table."""

    queue = models.OneToOneField(
        Queue, on_delete=models.CASCADE, related_name="snapshot", verbose_name=_("queue")
    )
    counts = models.JSONField(_("counts"), default=dict)
    oldest_waiting_at = models.DateTimeField(_("oldest waiting at"), null=True, blank=True)
    refreshed_at = models.DateTimeField(_("refreshed at"))

    class Meta:
        verbose_name = _("queue snapshot")
        verbose_name_plural = _("queue snapshots")

    def __str__(self) -> str:
        return f"{self.queue_id} @ {self.refreshed_at}"


class AuditLog(models.Model):
    """Who did what to how many jobs, queues or schedules, and when."""

    user = models.ForeignKey(
        "auth.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    username = models.CharField(_("username"), max_length=150, blank=True, default="")
    action = models.CharField(_("action"), max_length=64)
    target = models.CharField(_("target"), max_length=200, blank=True, default="")
    count = models.PositiveIntegerField(_("count"), default=0)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("audit log")
        verbose_name_plural = _("audit logs")

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.count}"


class Worker(models.Model):
    """A running ``runworker``: which queues it serves and when it was last alive."""

    id = models.CharField(_("id"), primary_key=True, max_length=200, help_text=_("host:pid"))
    hostname = models.CharField(_("hostname"), max_length=200)
    pid = models.PositiveIntegerField(_("pid"))
    queues = models.JSONField(
        _("queues"), default=list, help_text=_('Queue names served; ["*"] for all.')
    )
    list_key = models.CharField(
        _("list key"), max_length=100, help_text=_("The django-q2 list it listens on.")
    )
    concurrency = models.PositiveIntegerField(_("concurrency"), default=1)
    started_at = models.DateTimeField(_("started at"))
    last_heartbeat = models.DateTimeField(_("last heartbeat"), db_index=True)
    jobs_done = models.PositiveBigIntegerField(_("jobs done"), default=0, db_default=0)
    last_activity = models.DateTimeField(
        _("last activity"),
        null=True,
        blank=True,
        help_text=_("Last sign of life from the cluster's processes."),
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("worker")
        verbose_name_plural = _("workers")

    def __str__(self) -> str:
        return self.id
