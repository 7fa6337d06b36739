"""The doorbell: tell workers that a queue has runnable jobs.

Postgres holds the jobs; a doorbell message only says "drain queue X". Each ``runworker``
listens on one django-q2 list named for the set of queues it serves and advertises that
list as a *route* for each of its queues (with a heartbeat, so a dead worker's route ages
out). Ringing a queue pushes one drain message to every live list that serves it, unless
one is already pending there: a pending-bell key per (list, queue) keeps the lists from
filling up, because one drain empties the whole queue.

With Redis this is one Lua call per ring. Without Redis (the embedded default) routes come
from the ``Worker`` table and messages go through django-q2's ORM broker.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from functools import cache, partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from queues.redis_conn import client_for
from queues.selectors import ALL_QUEUES, live_workers, serves

logger = logging.getLogger("queues.doorbell")

KEY_PREFIX = "jobplatform"
# A pending bell expires by itself; and it holds back rings only while its message still
# waits in the list, so a worker killed between taking the message and clearing the bell
# never silences the queue.
BELL_TTL_SECONDS = 5
LIST_KEY_ENV = "JOBPLATFORM_LIST_KEY"

_RING_LUA = """
local now = tonumber(redis.call('TIME')[1])
local oldest = now - tonumber(ARGV[1])
local bell_ttl = tonumber(ARGV[2])
local pushed = 0
for i = 3, #ARGV, 2 do
  local queue = ARGV[i]
  local package = ARGV[i + 1]
  local seen = {}
  for _, routes in ipairs({'jobplatform:routes:' .. queue, 'jobplatform:routes:*'}) do
    for _, list in ipairs(redis.call('ZRANGEBYSCORE', routes, oldest, '+inf')) do
      if not seen[list] then
        seen[list] = true
        local bell = 'jobplatform:bell:' .. list .. ':' .. queue
        local messages = 'django_q:' .. list .. ':q'
        -- A pending bell holds back a ring only while a message still waits in the list.
        -- Once the list is empty, the message was taken: by a live worker (then one more
        -- drain is harmless) or by one that died before answering (then this ring is the
        -- only way the queue's jobs get picked up now).
        local fresh = redis.call('SET', bell, '1', 'NX', 'EX', bell_ttl)
        if fresh or redis.call('LLEN', messages) == 0 then
          if not fresh then redis.call('SET', bell, '1', 'EX', bell_ttl) end
          redis.call('RPUSH', messages, package)
          pushed = pushed + 1
        end
      end
    end
  end
end
return pushed
"""

_ROUTE_LUA = """
local now = tonumber(redis.call('TIME')[1])
for i = 2, #ARGV do
  redis.call('ZADD', 'jobplatform:routes:' .. ARGV[i], now, ARGV[1])
end
return now
"""


def redis_enabled() -> bool:
    return bool(settings.REDIS_URL)


@cache
def _redis_for(url: str):

    return client_for(url)


def redis_client():
    """The process's shared Redis client (redis-py resets its pool after a fork)."""
    return _redis_for(settings.REDIS_URL)


@cache
def _scripts(url: str):
    client = _redis_for(url)
    return client.register_script(_RING_LUA), client.register_script(_ROUTE_LUA)


def list_key_for(queue_names: Iterable[str] | None) -> str:
    """The django-q2 list that a worker serving ``queue_names`` listens on."""
    names = sorted(set(queue_names or ()))
    if not names or ALL_QUEUES in names:
        return f"{KEY_PREFIX}.all"
    joined = ",".join(names)
    if len(joined) > 60:
        joined = hashlib.sha1(joined.encode()).hexdigest()[:20]
    return f"{KEY_PREFIX}.q.{joined}"


def current_list_key() -> str:
    """The list the current worker process serves (set by runworker before forking)."""
    return os.environ.get(LIST_KEY_ENV, list_key_for(None))


def _package(queue_name: str) -> str:

    return SignedPackage.dumps(
        {
            "id": uuid.uuid4().hex,
            "name": f"drain:{queue_name}",
            "func": "queues.engine.runner.drain",
            "args": (queue_name,),
            "kwargs": {},
            "started": timezone.now(),
            "ack_failure": True,
            # -1: django-q2 sets no alarm of its own; the runner enforces job timeouts.
            "timeout": -1,
        }
    )


def ring(queue_names: Iterable[str]) -> int:
    """Wake a worker for each queue; returns how many drain messages were pushed."""
    names = sorted(set(queue_names))
    if not names:
        return 0
    ttl = settings.JOBPLATFORM["WORKER_TTL"]
    if redis_enabled():
        ring_script, _ = _scripts(settings.REDIS_URL)
        args: list = [ttl, BELL_TTL_SECONDS]
        for name in names:
            args += [name, _package(name)]
        return int(ring_script(args=args))
    return _ring_through_orm(names)


def ring_quietly(queue_names: Iterable[str]) -> None:
    """``ring``, logging instead of raising: the ledger already holds the jobs, so a lost
    ring only delays them until the scheduler's next re-wake."""
    try:
        ring(queue_names)
    except Exception:
        logger.warning("could not ring the doorbell for %s", list(queue_names), exc_info=True)


# The background ringer rings at most once in this many seconds: a ring asked for sooner
# after the last one waits for the rest of the gap and goes out with every ring asked for
# meanwhile. A lone enqueue (an idle queue's pickup) rings at once; a burst of single
# enqueues (each ~0.5 ms) shares one Redis call per gap instead of paying one each.
RING_GAP_SECONDS = 0.002


class _Ringer:
    """Rings from a background thread, so a request that enqueues does not wait for Redis,
    and many rings close together become one Lua call (at most one per
    ``RING_GAP_SECONDS``). ``flush`` rings at once (tests, process exit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ringing = threading.Lock()  # flush waits for a ring in flight
        self._pending: set[str] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._last_ring = 0.0

    def add(self, names: Iterable[str]) -> None:
        with self._lock:
            self._pending.update(names)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # First use, or in a forked child: threads do not survive a fork.
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, name="jobplatform-ringer", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> None:
        with self._ringing:
            with self._lock:
                names, self._pending = self._pending, set()
            if names:
                self._last_ring = time.monotonic()
                ring_quietly(names)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            too_soon = self._last_ring + RING_GAP_SECONDS - time.monotonic()
            if too_soon > 0:
                time.sleep(too_soon)  # what is asked for meanwhile goes out with it
            self._wake.clear()
            self.flush()


_ringer = _Ringer()
atexit.register(_ringer.flush)


def ring_soon(queue_names: Iterable[str]) -> None:
    """Ring from the background thread (enqueue's after-commit path)."""
    names = list(queue_names)
    if names:
        _ringer.add(names)


def ring_on_commit(queue_names: Iterable[str]) -> None:
    """Ring these queues once the current transaction commits (at once outside one)."""
    names = sorted(set(queue_names))
    if names:
        transaction.on_commit(partial(ring_soon, names))


def flush() -> None:
    """Ring whatever ``ring_soon`` still holds, now."""
    _ringer.flush()


def _ring_through_orm(names: list[str]) -> int:

    routes = list(live_workers().values_list("list_key", "queues"))
    pushed = 0
    for name in names:
        lists = {key for key, served in routes if serves(served, name)}
        for list_key in lists:
            # One drain empties the queue: a couple of pending messages per list is plenty.
            if OrmQ.objects.filter(key=list_key).count() >= 2:
                continue
            get_broker(list_key).enqueue(_package(name))
            pushed += 1
    return pushed


def bell_answered(queue_name: str, list_key: str | None = None) -> None:
    """Called by a drain as it starts: the next ring for this queue pushes again."""
    if redis_enabled():
        key = list_key or current_list_key()
        redis_client().delete(f"{KEY_PREFIX}:bell:{key}:{queue_name}")


def advertise(list_key: str, queue_names: Iterable[str]) -> None:
    """Publish (or refresh) the route ``queue -> list_key`` for each queue served."""
    if redis_enabled():
        _, route_script = _scripts(settings.REDIS_URL)
        route_script(args=[list_key, *(list(queue_names) or [ALL_QUEUES])])


def withdraw(list_key: str, queue_names: Iterable[str]) -> None:
    """Remove the routes of a worker that is stopping."""
    if redis_enabled():
        client = redis_client()
        pipe = client.pipeline()
        for name in list(queue_names) or [ALL_QUEUES]:
            pipe.zrem(f"{KEY_PREFIX}:routes:{name}", list_key)
        pipe.execute()
