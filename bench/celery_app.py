"""Celery peer: 2 prefork workers on Redis, no result backend."""

import os

from celery import Celery

from bench import tasks

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_default_queue="bench",
)


@app.task(name="bench.noop")
def noop() -> None:
    tasks.noop()
