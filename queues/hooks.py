"""Extension points other apps plug into without queues importing them (and without the
web process importing the worker side)."""

from __future__ import annotations

from collections.abc import Callable

# Work added to each maintenance tick (scheduling fires due schedules). A hook takes no
# arguments and may return the seconds until it next has something to do, so the loop can
# wake up on time instead of at the next tick.
tick_hooks: list[Callable[[], float | None]] = []


def register_tick_hook(hook: Callable[[], float | None]) -> None:
    if hook not in tick_hooks:
        tick_hooks.append(hook)
