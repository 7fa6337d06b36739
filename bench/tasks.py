"""No-op tasks for the peers. Each counts itself in Redis so the driver knows when all ran."""

import os
from functools import cache

import redis

COUNTER = "bench:done"


@cache
def _client():
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


def noop() -> None:
    _client().incr(COUNTER)
