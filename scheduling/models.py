"""Schedules: what to enqueue, and when, on django-celery-beat's schedule vocabulary.

No celery beat process runs: ``runscheduler`` reads these rows and enqueues into the
platform's queues.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule


class ScheduleStatus(models.IntegerChoices):
    # The API takes and shows status as these integers: 1 = enabled, 0 = disabled, 2 = paused.
    # With a context: other apps' catalogs (django_celery_beat's) translate "Enabled" apart.
    DISABLED = 0, pgettext_lazy("schedule status", "Disabled")
    ENABLED = 1, pgettext_lazy("schedule status", "Enabled")
    PAUSED = 2, pgettext_lazy("schedule status", "Paused")


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", _("Skip missed runs")
    RUN_ONCE = "run_once", _("Run once for all missed runs")
    CATCH_UP = "catch_up", _("Catch up every missed run (at most max_catch_up)")


class ScheduledJob(models.Model):
    name = models.CharField(_("name"), max_length=128, unique=True)
    description = models.TextField(_("description"), blank=True, default="")
    handler = models.CharField(
        _("handler"), max_length=200, help_text=_("The job handler it enqueues.")
    )
    queue = models.ForeignKey(
        "queues.Queue",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("queue"),
        help_text=_("Empty: the handler's queue."),
    )
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(_("priority"), null=True, blank=True)
    retry_attempts = models.PositiveIntegerField(_("retry attempts"), null=True, blank=True)
    retry_delay_ms = models.PositiveIntegerField(_("retry delay ms"), null=True, blank=True)
    timeout = models.FloatField(_("timeout"), null=True, blank=True, help_text=_("Seconds."))

    status = models.SmallIntegerField(
        _("status"), choices=ScheduleStatus.choices, default=ScheduleStatus.ENABLED
    )
    start_at = models.DateTimeField(_("start at"), null=True, blank=True)
    end_at = models.DateTimeField(_("end at"), null=True, blank=True)
    run_limit = models.PositiveIntegerField(
        _("run limit"),
        null=True,
        blank=True,
        help_text=_("Stop (disable) after this many runs."),
    )
    run_immediately = models.BooleanField(
        _("run immediately"),
        default=False,
        help_text=_("Also run once as soon as it is created."),
    )
    misfire_policy = models.CharField(
        _("misfire policy"),
        max_length=16,
        choices=MisfirePolicy.choices,
        default=MisfirePolicy.RUN_ONCE,
    )
    max_catch_up = models.PositiveIntegerField(_("max catch up"), default=10)
    domain = models.CharField(_("domain"), max_length=64, blank=True, default="")

    crontab = models.ForeignKey(
        CrontabSchedule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=pgettext_lazy("schedule field", "crontab"),
    )
    interval = models.ForeignKey(
        IntervalSchedule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("interval"),
    )
    clocked = models.ForeignKey(
        ClockedSchedule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=pgettext_lazy("schedule field", "clocked"),
    )

    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True)
    # Which timing (crontab, interval, clocked, start/end, created_at) next_run_at was
    # computed from: the scheduler replans a row whose timing no longer matches it, i.e.
    # one written with the ORM (fixtures, data migrations, scripts) behind the services.
    timing_fingerprint = models.CharField(
        _("timing fingerprint"),
        max_length=40,
        blank=True,
        default="",
        db_default="",
        editable=False,
    )
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)
    run_count = models.PositiveIntegerField(_("run count"), default=0)
    last_error = models.TextField(_("last error"), blank=True, default="")
    is_system = models.BooleanField(
        _("is system"), default=False, help_text=_("Declared in code; synced at deploy.")
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("scheduled job")
        verbose_name_plural = _("scheduled jobs")
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
    SCHEDULED = "scheduled", _("Scheduled")
    CATCH_UP = "catch_up", _("Catch-up of a missed run")
    MANUAL = "manual", _("Run now")
    IMMEDIATE = "immediate", _("Run immediately on creation")


class ScheduleRun(models.Model):
    """One firing. Unique per (schedule, due instant): a second fire of the same instant
    cannot be written, whatever the number of scheduler copies."""

    schedule = models.ForeignKey(
        ScheduledJob,
        on_delete=models.CASCADE,
        related_name="runs",
        verbose_name=_("schedule"),
    )
    due_at = models.DateTimeField(_("due at"))
    fired_at = models.DateTimeField(_("fired at"))
    trigger = models.CharField(_("trigger"), max_length=16, choices=RunTrigger.choices)
    job = models.ForeignKey(
        "queues.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="schedule_runs",
        verbose_name=_("job"),
    )
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("schedule run")
        verbose_name_plural = _("schedule runs")
        ordering = ["-due_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "due_at"], name="schedule_run_unique_due"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.due_at:%Y-%m-%d %H:%M:%S}"

    @property
    def lateness_ms(self) -> int:
        return int((self.fired_at - self.due_at).total_seconds() * 1000)
