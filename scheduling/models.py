"""Schedules: what to enqueue, and when, on django-celery-beat's schedule vocabulary.

No celery beat process runs: ``runscheduler`` reads these rows and enqueues into the
platform's queues.
"""

from django.db import models
from django.db.models import Q
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule


class ScheduleStatus(models.IntegerChoices):
    # The API takes and shows status as these integers: 1 = enabled, 0 = disabled, 2 = paused.
    DISABLED = 0, "Disabled"
    ENABLED = 1, "Enabled"
    PAUSED = 2, "Paused"


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", "Skip missed runs"
    RUN_ONCE = "run_once", "Run once for all missed runs"
    CATCH_UP = "catch_up", "Catch up every missed run (at most max_catch_up)"


class ScheduledJob(models.Model):
    name = models.CharField(max_length=128, unique=True)
    description = models.TextField(blank=True, default="")
    handler = models.CharField(max_length=200, help_text="The job handler it enqueues.")
    queue = models.ForeignKey(
        "queues.Queue",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="Empty: the handler's queue.",
    )
    payload = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(null=True, blank=True)
    retry_attempts = models.PositiveIntegerField(null=True, blank=True)
    retry_delay_ms = models.PositiveIntegerField(null=True, blank=True)
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds.")

    status = models.SmallIntegerField(
        choices=ScheduleStatus.choices, default=ScheduleStatus.ENABLED
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    run_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stop (disable) after this many runs."
    )
    run_immediately = models.BooleanField(
        default=False, help_text="Also run once as soon as it is created."
    )
    misfire_policy = models.CharField(
        max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.RUN_ONCE
    )
    max_catch_up = models.PositiveIntegerField(default=10)
    domain = models.CharField(max_length=64, blank=True, default="")

    crontab = models.ForeignKey(CrontabSchedule, on_delete=models.PROTECT, null=True, blank=True)
    interval = models.ForeignKey(IntervalSchedule, on_delete=models.PROTECT, null=True, blank=True)
    clocked = models.ForeignKey(ClockedSchedule, on_delete=models.PROTECT, null=True, blank=True)

    next_run_at = models.DateTimeField(null=True, blank=True)
    # Which timing (crontab, interval, clocked, start/end, created_at) next_run_at was
    # computed from: the scheduler replans a row whose timing no longer matches it, i.e.
    # one written with the ORM (fixtures, data migrations, scripts) behind the services.
    timing_fingerprint = models.CharField(
        max_length=40, blank=True, default="", db_default="", editable=False
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    is_system = models.BooleanField(default=False, help_text="Declared in code; synced at deploy.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("run_schedule", "Can run schedules now"),
            ("pause_schedule", "Can enable, disable, pause and resume schedules"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(crontab__isnull=False, interval__isnull=True, clocked__isnull=True)
                    | Q(crontab__isnull=True, interval__isnull=False, clocked__isnull=True)
                    | Q(crontab__isnull=True, interval__isnull=True, clocked__isnull=False)
                ),
                name="schedule_exactly_one_kind",
            ),
        ]
        indexes = [
            # Serves the due query in scheduling/services.py:
            #   WHERE status = 1 AND next_run_at <= now ORDER BY next_run_at FOR UPDATE SKIP LOCKED
            models.Index(fields=["next_run_at"], condition=Q(status=1), name="schedule_due_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class RunTrigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CATCH_UP = "catch_up", "Catch-up of a missed run"
    MANUAL = "manual", "Run now"
    IMMEDIATE = "immediate", "Run immediately on creation"


class ScheduleRun(models.Model):
    """One firing. Unique per (schedule, due instant): a second fire of the same instant
    cannot be written, whatever the number of scheduler copies."""

    schedule = models.ForeignKey(ScheduledJob, on_delete=models.CASCADE, related_name="runs")
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    job = models.ForeignKey(
        "queues.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="schedule_runs"
    )
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-due_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"], name="schedule_run_unique_due"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.due_at:%Y-%m-%d %H:%M:%S}"

    @property
    def lateness_ms(self) -> int:
        return int((self.fired_at - self.due_at).total_seconds() * 1000)
