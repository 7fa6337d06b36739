"""Extension points other apps plug into without queues importing them (and without the
web process importing the engine): work on each maintenance tick, dashboard panels, and
rows on a job's admin page. Exports register in ``queues.exports``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

# Work added to each maintenance tick (scheduling fires due schedules). A hook takes no
# arguments and may return the seconds until it next has something to do, so the loop can
# wake up on time instead of at the next tick.
tick_hooks: list[Callable[[], float | None]] = []

# Sections of the dashboard (e.g. schedules due next): each takes "now" and returns a dict
# with a ``title`` and ``rows``.
panels: list[Callable[[datetime], dict]] = []

# Rows of a job's admin page: (label, render), where render(job) returns safe HTML or
# None when the row does not apply to that job.
job_details: list[tuple[str, Callable[[Any], str | None]]] = []


def register_tick_hook(hook: Callable[[], float | None]) -> None:
    if hook not in tick_hooks:
        tick_hooks.append(hook)


def register_panel(panel: Callable[[datetime], dict]) -> None:
    if panel not in panels:
        panels.append(panel)


def register_job_detail(label: str, render: Callable[[Any], str | None]) -> None:
    """Add a row, titled ``label``, to every job's admin page."""
    if (label, render) not in job_details:
        job_details.append((label, render))
