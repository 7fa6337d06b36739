"""The handler registry: the allow-list of what a job may run.

Handlers register with ``@job("name", ...)`` in any installed app's ``jobs.py``; those
modules are imported when Django starts (``QueuesConfig.ready``).
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from queues.backoff import normalize_backoff
from queues.exceptions import UnknownHandler
from queues.priority import MAX_PRIORITY, MIN_PRIORITY


@dataclass(frozen=True)
class Handler:
    name: str
    func: Callable[..., Any]
    queue: str | None = None
    priority: int | None = None
    attempts: int | None = None
    backoff: dict | None = None
    timeout: float | None = None
    # An ``async def`` handler: its jobs run side by side in their worker process, at most
    # ``concurrency`` of this handler's at once (and ASYNC_CONCURRENCY of all of them).
    concurrency: int | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)


_handlers: dict[str, Handler] = {}


def job(
    name: str,
    *,
    queue: str | None = None,
    priority: int | None = None,
    attempts: int | None = None,
    backoff: Any = None,
    timeout: float | None = None,
    concurrency: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``def handler(ctx, payload)`` as the job handler called ``name``.

    Options are defaults for jobs of this handler; an ``enqueue`` argument overrides
    them, and the queue's defaults fill in what neither gives.

    An ``async def handler(ctx, payload)`` runs on its worker process's event loop,
    side by side with other async jobs of the same batch: at most ``concurrency`` of this
    handler's jobs at once (default: the ``ASYNC_CONCURRENCY`` setting, which also bounds
    them all). A sync handler runs one job at a time per worker process.
    """
    if not name or not isinstance(name, str):
        raise ValueError("a job handler needs a non-empty name")
    if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
    if attempts is not None and attempts < 1:
        raise ValueError("attempts must be at least 1")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ValueError("concurrency must be a whole number of at least 1")
    spec = normalize_backoff(backoff) if backoff is not None else None

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        if concurrency is not None and not inspect.iscoroutinefunction(func):
            raise ValueError(
                f"job handler {name!r}: concurrency applies to async handlers (async def); "
                "a sync handler runs one job at a time per worker process"
            )
        existing = _handlers.get(name)
        if existing is not None and _qualname(existing.func) != _qualname(func):
            raise ValueError(
                f"job handler {name!r} is already registered by {_qualname(existing.func)}"
            )
        _handlers[name] = Handler(
            name=name,
            func=func,
            queue=queue,
            priority=priority,
            attempts=attempts,
            backoff=spec,
            timeout=timeout,
            concurrency=concurrency,
        )
        return func

    return register


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def get_handler(name: str) -> Handler:
    try:
        return _handlers[name]
    except KeyError:
        known = ", ".join(sorted(_handlers)) or "none"
        raise UnknownHandler(
            f"no job handler is registered as {name!r} (registered: {known})"
        ) from None


def handler_names() -> list[str]:
    return sorted(_handlers)
