"""The one thread beside a worker process's event loop that does its database work.

While the loop runs, Django refuses sync ORM calls on the loop's thread. The runner's
writes, its cancel checks and a handler's ``ctx.alog`` / ``ctx.aprogress`` /
``ctx.ais_cancelled`` run here instead, on one connection of their own, closed when the
drain ends (``close``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

_executor: ThreadPoolExecutor | None = None


async def run(func: Callable[..., Any], *args: Any) -> Any:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(1, thread_name_prefix="jobplatform-db")
    return await asyncio.get_running_loop().run_in_executor(_executor, func, *args)


def close() -> None:
    """Close the thread's database connection (the worker is going idle)."""
    if _executor is not None:
        # Looked up on that thread: each thread has its own connection.
        _executor.submit(lambda: connection.close()).result()
