"""Handlers registered only by the tests."""

import time

from django.db import connection

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


@job("test.sleep_first")
def sleep_first(ctx, payload):
    """Hangs on its first attempt (long enough to be killed), returns on later ones."""
    if ctx.attempt == 1:
        time.sleep(payload.get("seconds", 60))
    return {"attempt": ctx.attempt}


@job("test.slow")
def slow(ctx, payload):
    time.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


@job("test.stubborn")
def stubborn(ctx, payload):
    """Swallows every interrupt: only killing its process stops it."""
    deadline = time.monotonic() + payload.get("seconds", 60)
    while time.monotonic() < deadline:
        try:  # noqa: SIM105  (swallowing the interrupt is the point of this handler)
            time.sleep(0.05)
        except BaseException:
            pass
    return {"done": True}


@job("test.sms")
def sms(ctx, payload):
    ctx.rate_limit(
        f"phone:{payload['phone']}", limit=payload.get("limit", 2), per=payload.get("per", 1)
    )
    return {"sent": payload["phone"]}


@job("test.nan_result")
def nan_result(ctx, payload):
    return {"x": float("nan")}


@job("test.nul_error")
def nul_error(ctx, payload):
    raise ValueError("bad\x00byte")


@job("test.logs")
def logs(ctx, payload):
    import logging

    logging.getLogger("thirdparty.sdk").warning("calling the provider for %s", payload["who"])
    return {"ok": True}


class SlowMessage(Exception):  # noqa: N818
    """An error whose message takes a while to format (an interrupt may land meanwhile)."""

    def __str__(self):
        time.sleep(0.6)
        return "slow to describe"


@job("test.slow_message")
def slow_message(ctx, payload):
    raise SlowMessage()


@job("test.pg_sleep")
def pg_sleep(ctx, payload):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [payload["seconds"]])
    return {"slept": payload["seconds"]}


@job("test.db_query")
def db_query(ctx, payload):
    ctx.log("the connection works")
    return {"ok": True}


@job("test.cancel_other")
def cancel_other(ctx, payload):
    cancel_job(payload["other"])
    time.sleep(payload.get("then_sleep", 0.1))
    return {"cancelled": payload["other"]}


@job("test.lose_connection")
def lose_connection(ctx, payload):
    """Its database session is killed under it on the first try (a failover, say)."""
    if ctx.attempt == 1:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    ctx.log("second try")
    return {"attempt": ctx.attempt}


@job("test.surrogate")
def surrogate(ctx, payload):
    raise RuntimeError("cannot parse " + b"caf\xe9.txt".decode("utf-8", "surrogateescape"))


@job("test.wedge")
def wedge(ctx, payload):
    """Holds the GIL for a long time on its first tries (catastrophic regex backtracking):
    neither its timeout's signal nor its process's other threads can run."""
    import re

    if ctx.attempt <= payload.get("wedged_tries", 99):
        re.match(r"(a+)+$", "a" * payload.get("length", 40) + "b")
    return {"attempt": ctx.attempt}


@job("test.crash")
def crash(ctx, payload):
    """Takes its worker process down at once, on every try (a segfault, an OOM kill)."""
    import os

    os._exit(3)


@job("test.async_sleep", concurrency=5)
async def async_sleep(ctx, payload):
    """Waits without holding its worker: its jobs run side by side, five at a time."""
    import asyncio

    await ctx.alog(f"sleeping {payload['seconds']}s")
    await asyncio.sleep(payload["seconds"])
    if payload.get("fail"):
        raise TimeoutError("the upstream timed out")
    return {"slept": payload["seconds"], "cancelled": await ctx.ais_cancelled()}


@job("test.async_block")
async def async_block(ctx, payload):
    """Blocks its event loop: nothing can interrupt it but its process's death."""
    time.sleep(payload["seconds"])
    return {"blocked": payload["seconds"]}


@job("test.async_inner_cancel")
async def async_inner_cancel(ctx, payload):
    """Awaits a future that something else cancelled: its own failure, not the job's cancel."""
    import asyncio

    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future
