"""Every state change of schedules: create, status, run now, and firing what is due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule

from queues import audit
from queues.audit import Actor
from queues.exceptions import EnqueueError
from queues.models import Queue
from queues.services import enqueue, validate_job
from scheduling.calendar import next_occurrence, timing_fingerprint
from scheduling.cron import ScheduleError, get_zone, parse_cron
from scheduling.models import (
    MisfirePolicy,
    RunTrigger,
    ScheduledJob,
    ScheduleRun,
    ScheduleStatus,
)

logger = logging.getLogger("scheduling")

INTERVAL_PERIODS = ("days", "hours", "minutes", "seconds")
FIRE_BATCH = 100
# A broken schedule (its handler or queue gone, say) is retried this much later, so it
# neither spins nor holds up the others.
POISON_RETRY = timedelta(seconds=60)
# Scanning missed instants of a tiny interval after a long outage stops here.
MAX_SCAN = 10_000


def misfire_grace() -> timedelta:
    return timedelta(seconds=settings.JOBPLATFORM.get("SCHEDULE_MISFIRE_GRACE", 60))


# --- creating -------------------------------------------------------------------------


def create_schedule(
    *,
    name: str,
    handler: str,
    cron: str | None = None,
    timezone_name: str | None = None,
    every: int | None = None,
    period: str = "seconds",
    run_at: datetime | None = None,
    queue: str | None = None,
    payload: Any = None,
    priority: int | None = None,
    retry_attempts: int | None = None,
    retry_delay_ms: int | None = None,
    timeout: float | None = None,
    status: int = ScheduleStatus.ENABLED,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    run_limit: int | None = None,
    run_immediately: bool = False,
    misfire_policy: str = MisfirePolicy.RUN_ONCE,
    max_catch_up: int = 10,
    domain: str = "",
    description: str = "",
    is_system: bool = False,
    now: datetime | None = None,
) -> ScheduledJob:
    """Create a schedule from a cron string (+ time zone), an interval (``every`` +
    ``period``) or a one-off ``run_at``. Everything is validated first; a bad definition
    raises ``ScheduleError`` and writes nothing."""
    now = now or timezone.now()
    if not name or not isinstance(name, str):
        raise ScheduleError(_("a schedule needs a name"))
    if ScheduledJob.objects.filter(name=name).exists():
        raise ScheduleError(_("a schedule named %(name)s already exists") % {"name": repr(name)})
    schedule = ScheduledJob(
        name=name,
        handler=handler,
        payload={} if payload is None else payload,
        priority=priority,
        retry_attempts=retry_attempts,
        retry_delay_ms=retry_delay_ms,
        timeout=timeout,
        start_at=start_at,
        end_at=end_at,
        run_limit=run_limit,
        run_immediately=run_immediately,
        misfire_policy=misfire_policy,
        max_catch_up=max_catch_up,
        domain=domain or "",
        description=description or "",
        is_system=is_system,
        status=_status(status),
    )
    validate_schedule(schedule, queue=queue)
    kinds = [cron is not None, every is not None, run_at is not None]
    if sum(kinds) != 1:
        raise ScheduleError(_("give exactly one of cron, every (interval) or run_at (one-off)"))
    with transaction.atomic():
        if cron is not None:
            schedule.crontab = crontab_for(cron, timezone_name)
        elif every is not None:
            schedule.interval = interval_for(every, period)
        else:
            schedule.clocked = clocked_for(run_at)
        schedule.created_at = now
        if schedule.status != ScheduleStatus.DISABLED:
            plan(schedule, now)
        schedule.save()
        # auto_now_add overwrote created_at: put back the instant the interval grid (and
        # next_run_at above) was computed from.
        ScheduledJob.objects.filter(pk=schedule.pk).update(created_at=now)
        schedule.created_at = now
        if run_immediately and schedule.status == ScheduleStatus.ENABLED:
            fire_immediately(schedule, now=now)
    return schedule


def validate_kind(schedule: ScheduledJob) -> None:
    """Exactly one of a crontab, an interval or a clocked time (the admin's form; the
    other services build the kind themselves)."""
    kinds = (schedule.crontab_id, schedule.interval_id, schedule.clocked_id)
    if sum(k is not None for k in kinds) != 1:
        raise ScheduleError(
            _("Choose exactly one of a cron string / crontab, an interval or a clocked time.")
        )


def _status(value: Any) -> int:
    try:
        return ScheduleStatus(int(value)).value
    except (TypeError, ValueError):
        raise ScheduleError(
            _("status must be 1 (enabled), 0 (disabled) or 2 (paused), got %(value)s")
            % {"value": repr(value)}
        ) from None


def validate_schedule(schedule: ScheduledJob, *, queue: str | None) -> None:
    """Refuse a definition that could not fire (handler, queue, options, dates)."""
    if queue is not None:
        schedule.queue = Queue.objects.filter(name=queue).first()
        if schedule.queue is None:
            raise ScheduleError(_("no queue is named %(queue)s") % {"queue": repr(queue)})
    try:
        validate_job(schedule.handler, schedule.payload, **job_options(schedule))
    except EnqueueError as exc:
        raise ScheduleError(str(exc)) from None
    if schedule.misfire_policy not in MisfirePolicy.values:
        raise ScheduleError(
            _("misfire_policy must be one of %(values)s") % {"values": MisfirePolicy.values}
        )
    if schedule.start_at and schedule.end_at and schedule.end_at <= schedule.start_at:
        raise ScheduleError(_("end_at must be after start_at"))
    if schedule.run_limit is not None and schedule.run_limit < 1:
        raise ScheduleError(_("run_limit must be at least 1"))


def job_options(schedule: ScheduledJob) -> dict:
    options: dict[str, Any] = {}
    if schedule.queue_id:
        options["queue"] = schedule.queue.name
    if schedule.priority is not None:
        options["priority"] = schedule.priority
    if schedule.retry_attempts is not None:
        options["attempts"] = schedule.retry_attempts
    if schedule.retry_delay_ms is not None:
        options["backoff"] = {"type": "fixed", "delay": schedule.retry_delay_ms}
    if schedule.timeout is not None:
        options["timeout"] = schedule.timeout
    return options


def crontab_for(cron: str, timezone_name: str | None) -> CrontabSchedule:
    fields = parse_cron(cron).split()
    zone = get_zone(timezone_name or settings.TIME_ZONE)
    return _first_or_create(
        CrontabSchedule,
        minute=fields[0],
        hour=fields[1],
        day_of_month=fields[2],
        month_of_year=fields[3],
        day_of_week=fields[4],
        timezone=zone,
    )


def interval_for(every: int, period: str) -> IntervalSchedule:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ScheduleError(
            _("every must be a whole number >= 1, got %(every)s") % {"every": repr(every)}
        )
    if period not in INTERVAL_PERIODS:
        raise ScheduleError(
            _("period must be one of %(periods)s, got %(period)s")
            % {"periods": INTERVAL_PERIODS, "period": repr(period)}
        )
    return _first_or_create(IntervalSchedule, every=every, period=period)


def _first_or_create(model, **fields):
    """The oldest row with these fields, or a new one. Not ``get_or_create``: celery-beat's
    schedule models have no unique constraint, so twins exist (an operator adding one in
    the admin, two concurrent creates) and ``get`` would raise MultipleObjectsReturned."""
    existing = model.objects.filter(**fields).order_by("pk").first()
    return existing if existing is not None else model.objects.create(**fields)


def clocked_for(run_at: datetime) -> ClockedSchedule:
    if not isinstance(run_at, datetime) or timezone.is_naive(run_at):
        raise ScheduleError(_("run_at must be a timezone-aware datetime"))
    return _first_or_create(ClockedSchedule, clocked_time=run_at)


# --- status ---------------------------------------------------------------------------


STATUS_AUDIT_ACTIONS = {
    ScheduleStatus.ENABLED: "enable_schedules",
    ScheduleStatus.DISABLED: "disable_schedules",
    ScheduleStatus.PAUSED: "pause_schedules",
}


def set_status(
    schedule: ScheduledJob, status: int, *, by: Actor = None, now: datetime | None = None
) -> ScheduledJob:
    """Enable (1), disable (0) or pause (2). Enabling starts from now; resuming a paused
    schedule keeps its next run, so runs missed while paused follow the misfire policy.
    Audited, with ``by`` (a user or a label) as who asked."""
    now = now or timezone.now()
    status = _status(status)
    with transaction.atomic():
        schedule = ScheduledJob.objects.select_for_update().get(pk=schedule.pk)
        was = schedule.status
        schedule.status = status
        if status == ScheduleStatus.DISABLED:
            schedule.next_run_at = None
        elif status == ScheduleStatus.ENABLED and (
            was == ScheduleStatus.DISABLED or schedule.next_run_at is None
        ):
            plan(schedule, now)
            schedule.last_error = ""
        schedule.save(
            update_fields=[
                "status",
                "next_run_at",
                "timing_fingerprint",
                "last_error",
                "updated_at",
            ]
        )
        audit.record(by=by, action=STATUS_AUDIT_ACTIONS[status], target=schedule.name, count=1)
    return schedule


def enable(schedule: ScheduledJob, **kw) -> ScheduledJob:
    return set_status(schedule, ScheduleStatus.ENABLED, **kw)


def disable(schedule: ScheduledJob, **kw) -> ScheduledJob:
    return set_status(schedule, ScheduleStatus.DISABLED, **kw)


def pause(schedule: ScheduledJob, **kw) -> ScheduledJob:
    return set_status(schedule, ScheduleStatus.PAUSED, **kw)


def resume(schedule: ScheduledJob, **kw) -> ScheduledJob:
    return set_status(schedule, ScheduleStatus.ENABLED, **kw)


def reschedule(schedule: ScheduledJob, *, now: datetime | None = None) -> ScheduledJob:
    """Recompute the next run after the schedule's definition changed (admin edits)."""
    now = now or timezone.now()
    if schedule.status == ScheduleStatus.DISABLED:
        schedule.next_run_at = None
    else:
        plan(schedule, now)
    schedule.last_error = ""
    ScheduledJob.objects.filter(pk=schedule.pk).update(
        next_run_at=schedule.next_run_at,
        timing_fingerprint=schedule.timing_fingerprint,
        last_error="",
    )
    return schedule


def plan(schedule: ScheduledJob, now: datetime) -> None:
    """Set ``next_run_at`` from the schedule's timing, and remember which timing that was
    (the scheduler replans the row when it changes behind the services' back)."""
    schedule.next_run_at = next_occurrence(schedule, now)
    schedule.timing_fingerprint = timing_fingerprint(schedule)


_TIMING_COLUMNS = (
    "id",
    "status",
    "next_run_at",
    "timing_fingerprint",
    "start_at",
    "end_at",
    "created_at",
    *(f"crontab__{f}" for f in ("minute", "hour", "day_of_month", "month_of_year")),
    "crontab__day_of_week",
    "crontab__timezone",
    "interval__every",
    "interval__period",
    "clocked__clocked_time",
)


def plan_schedules(*, now: datetime | None = None, changed: bool = True) -> int:
    """Plan the enabled schedules the services never planned: no ``next_run_at`` (created
    with the ORM: fixtures, ``loaddata``, data migrations, scripts) or, with ``changed``,
    timing edited with the ORM since it was planned. A row with a ``next_run_at`` but no
    fingerprint (written before fingerprints, or by a fixture that names its next run)
    keeps it and is only adopted. Returns how many were (re)planned."""
    now = now or timezone.now()
    enabled = ScheduledJob.objects.filter(status=ScheduleStatus.ENABLED)
    if not changed:
        enabled = enabled.filter(next_run_at__isnull=True)
    rows = enabled.select_related("crontab", "interval", "clocked").only(*_TIMING_COLUMNS)
    stale = [s.pk for s in rows if _needs_plan(s)]
    if not stale:
        return 0
    planned = 0
    with transaction.atomic():
        for schedule in (
            ScheduledJob.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("crontab", "interval", "clocked")
            .filter(pk__in=stale, status=ScheduleStatus.ENABLED)
        ):
            if not _needs_plan(schedule):
                continue  # planned by a service or another scheduler copy meanwhile
            if schedule.next_run_at is not None and not schedule.timing_fingerprint:
                schedule.timing_fingerprint = timing_fingerprint(schedule)
            else:
                plan(schedule, now)
                planned += 1
                if schedule.next_run_at is None:  # a one-off in the past, an end passed
                    schedule.status = ScheduleStatus.DISABLED
                schedule.last_error = ""
            schedule.save(
                update_fields=[
                    "next_run_at",
                    "timing_fingerprint",
                    "status",
                    "last_error",
                    "updated_at",
                ]
            )
    if planned:
        logger.info("planned %d schedule(s) written with the ORM", planned)
    return planned


def _needs_plan(schedule: ScheduledJob) -> bool:
    return schedule.next_run_at is None or schedule.timing_fingerprint != timing_fingerprint(
        schedule
    )


# --- running --------------------------------------------------------------------------


def run_now(
    schedule: ScheduledJob, *, by: Actor = None, now: datetime | None = None
) -> ScheduleRun:
    """Enqueue the schedule's job now. The next regular run does not move. Audited,
    with ``by`` (a user or a label) as who asked."""
    now = now or timezone.now()
    with transaction.atomic():
        run = _run(schedule, due=now, trigger=RunTrigger.MANUAL, now=now)
        if run is not None:
            audit.record(by=by, action="run_schedules", target=schedule.name, count=1)
    if run is None:
        raise ScheduleError(_("a run for this instant already exists; try again"))
    return run


def fire_immediately(schedule: ScheduledJob, *, now: datetime | None = None) -> ScheduleRun | None:
    """The one run a schedule created with ``run_immediately`` gets at once."""
    now = now or timezone.now()
    with transaction.atomic():
        return _run(schedule, due=now, trigger=RunTrigger.IMMEDIATE, now=now)


def _run(
    schedule: ScheduledJob, *, due: datetime, trigger: str, now: datetime
) -> ScheduleRun | None:
    """Write the run row (unique per schedule and instant) and enqueue its job; None if
    this instant was already fired."""
    try:
        with transaction.atomic():
            run = ScheduleRun.objects.create(
                schedule=schedule, due_at=due, fired_at=now, trigger=trigger
            )
    except IntegrityError:
        return None
    run.job = enqueue(schedule.handler, schedule.payload, **job_options(schedule))
    run.save(update_fields=["job"])
    return run


def fire_due(*, now: datetime | None = None, limit: int = FIRE_BATCH) -> int:
    """Fire every enabled schedule that is due. Safe in several processes at once: each
    schedule row is locked (SKIP LOCKED) while it fires, and its run rows are unique per
    instant. A schedule that fails is recorded and retried later; the others go on."""
    now = now or timezone.now()
    fired = 0
    with transaction.atomic():
        due = list(
            ScheduledJob.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("crontab", "interval", "clocked", "queue")
            .filter(status=ScheduleStatus.ENABLED, next_run_at__lte=now)
            .order_by("next_run_at")[:limit]
        )
        for schedule in due:
            try:
                with transaction.atomic():
                    fired += _fire(schedule, now)
            except Exception as exc:
                logger.exception("schedule %s failed to fire", schedule.name)
                ScheduledJob.objects.filter(pk=schedule.pk).update(
                    last_error=f"{type(exc).__name__}: {exc}", next_run_at=now + POISON_RETRY
                )
    return fired


def _fire(schedule: ScheduledJob, now: datetime) -> int:
    instants: list[datetime] = []
    cursor = schedule.next_run_at
    while cursor is not None and cursor <= now and len(instants) < MAX_SCAN:
        instants.append(cursor)
        cursor = next_occurrence(schedule, cursor)
    if cursor is not None and cursor <= now:
        cursor = next_occurrence(schedule, now)
    grace = misfire_grace()
    on_time = [(i, RunTrigger.SCHEDULED) for i in instants if now - i <= grace]
    missed = [(i, RunTrigger.CATCH_UP) for i in instants if now - i > grace]
    policy = schedule.misfire_policy
    if policy == MisfirePolicy.CATCH_UP:
        chosen = missed[-schedule.max_catch_up :] if schedule.max_catch_up else []
        chosen += on_time
    elif policy == MisfirePolicy.RUN_ONCE and missed and not on_time:
        chosen = missed[-1:]
    else:
        chosen = on_time
    if schedule.run_limit is not None:
        chosen = chosen[: max(schedule.run_limit - schedule.run_count, 0)]
    fired = 0
    for due, trigger in chosen:
        if _run(schedule, due=due, trigger=trigger, now=now) is not None:
            fired += 1
            schedule.last_run_at = due
    schedule.run_count += fired
    schedule.next_run_at = cursor
    finished = schedule.run_limit is not None and schedule.run_count >= schedule.run_limit
    if finished or cursor is None:
        schedule.status = ScheduleStatus.DISABLED
        schedule.next_run_at = None
    schedule.last_error = ""
    schedule.save(
        update_fields=[
            "run_count",
            "last_run_at",
            "next_run_at",
            "status",
            "last_error",
            "updated_at",
        ]
    )
    return fired


def seconds_until_next_due(now: datetime | None = None) -> float | None:
    now = now or timezone.now()
    nxt = ScheduledJob.objects.filter(status=ScheduleStatus.ENABLED).aggregate(
        due=Min("next_run_at")
    )["due"]
    if nxt is None:
        return None
    return max((nxt - now).total_seconds(), 0.0)
