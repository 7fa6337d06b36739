"""Keyed rate limits shared by every worker on every host (e.g. at most 10 SMS per phone
number per minute). Fixed windows in Redis (one Lua call) or, without Redis, in the database.

A handler calls ``ctx.rate_limit(key, limit=10, per=60)``; when the window is exhausted
it raises ``RateLimited`` and the job is put back as ``delayed`` until the window ends,
without using up an attempt.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from queues import doorbell
from queues.engine.clock import database_now
from queues.exceptions import RateLimited
from queues.models import RateLimitWindow

_HIT_LUA = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return redis.call('PTTL', KEYS[1])
end
if redis.call('INCR', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return -1
"""


def hit(key: str, *, limit: int, per: float) -> float | None:
    """Count one use of ``key``. Returns None if allowed, else seconds until it is."""
    if limit < 1 or per <= 0:
        raise ValueError("limit must be >= 1 and per > 0 seconds")
    if doorbell.redis_enabled():
        client = doorbell.redis_client()
        script = client.register_script(_HIT_LUA)
        ttl = script(keys=[f"{doorbell.KEY_PREFIX}:limit:{key}"], args=[limit, int(per * 1000)])
        if int(ttl) == -1:
            return None
        return max(int(ttl), 1) / 1000
    return _hit_in_database(key, limit=limit, per=per)


def _hit_in_database(key: str, *, limit: int, per: float) -> float | None:
    window = timedelta(seconds=per)
    with transaction.atomic():
        now = database_now()  # the clock every host shares
        row, _ = RateLimitWindow.objects.select_for_update().get_or_create(
            key=key, defaults={"window_start": now, "count": 0}
        )
        if now - row.window_start >= window:
            row.window_start, row.count = now, 0
        if row.count >= limit:
            return max((row.window_start + window - now).total_seconds(), 0.001)
        row.count += 1
        row.save(update_fields=["window_start", "count"])
    return None


def check(key: str, *, limit: int, per: float) -> None:
    """``hit`` that raises ``RateLimited`` when the limit is used up."""
    retry_in = hit(key, limit=limit, per=per)
    if retry_in is not None:
        raise RateLimited(key, retry_in)
