"""The scheduler's maintenance-loop hook: fire what is due, say when the next one is.

It sits apart from scheduling/services.py because it also syncs the system schedules of
scheduling/system.py, which builds on those services."""

from __future__ import annotations

import logging

from scheduling.services import fire_due, seconds_until_next_due
from scheduling.system import sync_system_schedules

logger = logging.getLogger("scheduling")

_synced = False


def scheduler_tick() -> float | None:
    """The maintenance-loop hook: fire what is due, say when the next one is. The first
    call in a process also syncs the system schedules declared in code."""
    global _synced
    if not _synced:
        try:
            logger.info("system schedules: %s", sync_system_schedules())
            _synced = True
        except Exception:
            logger.exception("could not sync the system schedules; retrying next tick")
    fire_due()
    return seconds_until_next_due()
