"""The handler registry: the allow-list of what a job may run.

Handlers register with ``@job("name", ...)`` in any installed app's ``jobs.py``; those
modules are imported when Django starts (``QueuesConfig.ready``).
"""

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from queues.backoff import normalize_backoff
from queues.exceptions import UnknownHandler
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.schema_messages import schema_message


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
    # What a payload looks like (shown by the admin's new-job form), and the JSON schema
    # every payload must match: enqueue, the API and the admin refuse one that does not.
    example: Any = None
    schema: dict | None = None
    validator: Draft202012Validator | None = field(default=None, compare=False, repr=False)

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
    example: Any = None,
    schema: dict | None = None,
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
    validator = _validator(name, schema, example)

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
            example=example,
            schema=schema,
            validator=validator,
        )
        return func

    return register


def _validator(name: str, schema: dict | None, example: Any) -> Draft202012Validator | None:
    if example is not None:
        try:
            json.dumps(example, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job handler {name!r}: example is not JSON: {exc}") from None
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise ValueError(f"job handler {name!r}: schema must be a dict (a JSON schema)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"job handler {name!r}: not a JSON schema: {exc.message}") from None
    validator = Draft202012Validator(schema)
    if example is not None:
        error = next(iter(validator.iter_errors(example)), None)
        if error is not None:
            raise ValueError(
                f"job handler {name!r}: its example does not match its schema: {error.message}"
            )
    return validator


def payload_error(handler: Handler, payload: Any) -> str | None:
    """Why ``payload`` breaks the handler's schema (the first error, with where), or None."""
    if handler.validator is None:
        return None
    error = next(iter(handler.validator.iter_errors(payload)), None)
    if error is None:
        return None
    message = schema_message(error)
    where = "/".join(str(p) for p in error.absolute_path)
    if where:
        return _("%(error)s (at %(where)s)") % {"error": message, "where": where}
    return message


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def get_handler(name: str) -> Handler:
    try:
        return _handlers[name]
    except KeyError:
        known = ", ".join(sorted(_handlers)) or _("none")
        raise UnknownHandler(
            _("no job handler is registered as %(name)s (registered: %(known)s)")
            % {"name": repr(name), "known": known}
        ) from None


def handler_names() -> list[str]:
    return sorted(_handlers)
