"""The platform's I/O-bound benchmark handler: one GET of the slow local server per job.

Loaded by the bench's workers through EXTRA_JOB_MODULES=bench.io_jobs.
"""

from __future__ import annotations

import httpx

from queues import job

_client: httpx.AsyncClient | None = None


@job("bench.http_wait")
async def http_wait(ctx, payload):
    global _client
    if _client is None:  # one pool per worker process, as each BullMQ worker has
        _client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=100))
    response = await _client.get(payload["url"])
    response.raise_for_status()
    return None
