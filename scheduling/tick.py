"""The scheduler's maintenance-loop hook: fire what is due, say when the next one is.

It sits apart from scheduling/services.py because it also syncs the system schedules of
scheduling/system.py, which builds on those services."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings

from scheduling.services import fire_due, plan_schedules, seconds_until_next_due
from scheduling.system import sync_system_schedules

logger = logging.getLogger("scheduling")

_synced = False
# Looking for schedules whose timing was edited with the ORM reads every enabled row, so
# it runs every few seconds; rows with no next run at all are looked for on every tick.
_next_change_scan = 0.0


def scheduler_tick(now: datetime | None = None) -> float | None:
    """The maintenance-loop hook: plan schedules written with the ORM, fire what is due,
    say when the next one is. The first call in a process also syncs the system
    schedules declared in code."""
    global _synced, _next_change_scan
    if not _synced:
        try:
            logger.info("system schedules: %s", sync_system_schedules())
            _synced = True
        except Exception:
            logger.exception("could not sync the system schedules; retrying next tick")
    scan = time.monotonic() >= _next_change_scan
    if scan:
        interval = settings.JOBPLATFORM.get("SCHEDULE_CHANGE_SCAN_INTERVAL", 5)
        _next_change_scan = time.monotonic() + interval
    try:
        plan_schedules(now=now, changed=scan)
    except Exception:
        logger.exception("could not plan the schedules written with the ORM")
    fire_due(now=now)
    return seconds_until_next_due(now)
