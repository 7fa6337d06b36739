"""Built-in diagnostic handlers, used by health checks, demos and benchmarks."""

import time

from queues.exceptions import PermanentError
from queues.metrics import prune_buckets
from queues.registry import job
from queues.services import apply_retention as apply


@job("platform.echo", example={"message": "hello"})
def echo(ctx, payload):
    """Return the payload unchanged."""
    return payload


@job(
    "platform.sleep",
    example={"seconds": 2},
    schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0}},
        "additionalProperties": False,
    },
)
def sleep(ctx, payload):
    """Sleep ``{"seconds": s}``, reporting progress about ten times."""
    seconds = float((payload or {}).get("seconds", 1))
    if seconds < 0:
        raise PermanentError(f"seconds must not be negative, got {seconds}")
    steps = 10
    for step in range(1, steps + 1):
        if ctx.is_cancelled():
            return {"slept": seconds * (step - 1) / steps, "cancelled": True}
        time.sleep(seconds / steps)
        ctx.progress(step * 100 // steps)
    return {"slept": seconds}


@job(
    "platform.fail",
    example={"message": "smtp down", "permanent": True},
    schema={
        "type": "object",
        "properties": {"message": {"type": "string"}, "permanent": {"type": "boolean"}},
    },
)
def fail(ctx, payload):
    """Fail with ``{"message": m}``; ``"permanent": true`` fails without retry."""
    payload = payload or {}
    message = str(payload.get("message", "platform.fail was asked to fail"))
    if payload.get("permanent"):
        raise PermanentError(message)
    raise RuntimeError(message)


@job(
    "platform.apply-retention",
    queue="default",
    attempts=1,
    example={},
    schema={"type": "object", "maxProperties": 0},
)
def apply_retention(ctx, payload):
    """Delete finished jobs past their queue's retention, on demand (runscheduler applies
    it by itself every minute)."""

    return {"removed": apply(), "buckets_pruned": prune_buckets()}


# Exports and the Tasks API backend register their handlers on import.
from queues import exports, tasks_backend  # noqa: E402,F401
