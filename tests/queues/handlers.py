"""Handlers registered only by the tests."""

from queues import job
from queues.services import cancel_job

started: list[tuple[str, int]] = []


@job("test.record", queue="default")
def record(ctx, payload):
    started.append((payload["tag"], payload["n"]))
    return {"tag": payload["tag"], "n": payload["n"]}


@job("test.report", attempts=5, backoff={"type": "fixed", "delay": 100}, priority=3, timeout=9)
def report(ctx, payload):
    ctx.log("validating")
    ctx.progress(10)
    ctx.log(f"attempt {ctx.attempt} of job {ctx.job_id}")
    ctx.progress(80)
    return {"ok": True}


@job("test.cancel_self")
def cancel_self(ctx, payload):
    cancel_job(ctx.job_id)
    return {"cancelled_seen": ctx.is_cancelled()}


@job("test.bad_result")
def bad_result(ctx, payload):
    return object()


@job("test.flaky")
def flaky(ctx, payload):
    if ctx.attempt < payload["succeed_on"]:
        raise ConnectionError(f"try {ctx.attempt} failed")
    return {"attempt": ctx.attempt}
