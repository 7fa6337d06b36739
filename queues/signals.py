"""Signals for integrations. Each is sent once per job, after the change is committed,
with ``sender=Job`` and ``job_id``, ``queue`` and ``name`` keyword arguments (plus the ones
listed). Nothing is sent (and nothing costs) while no receiver is connected.

- ``job_enqueued``
- ``job_started`` (``attempt``)
- ``job_progress`` (``attempt``, ``progress``) — sent at once, not after commit
- ``job_completed`` (``attempt``, ``result``)
- ``job_failed`` (``attempt``, ``error``, ``final``: False when a retry is scheduled)
- ``job_stalled`` (``attempt``, ``error``)
- ``job_cancelled``
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.dispatch import Signal

job_enqueued = Signal()
job_started = Signal()
job_progress = Signal()
job_completed = Signal()
job_failed = Signal()
job_stalled = Signal()
job_cancelled = Signal()


def send_on_commit(signal: Signal, items: list[dict]) -> None:
    """Queue one send per item (``job_id``, ``queue``, ``name``, ...) for after commit."""
    if items and signal.has_listeners():
        transaction.on_commit(partial(_send_all, signal, items))


def _send_all(signal: Signal, items: list[dict]) -> None:
    # Load order: apps import these signals in their apps.py, before models exist.
    from queues.models import Job

    for item in items:
        signal.send_robust(sender=Job, **item)
