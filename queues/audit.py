"""The audit log: every operator action, whoever made it (a user in the admin or the API,
``"manage.py"``, ``"scheduler"``, Python code), with its size. Services write it."""

from __future__ import annotations

from typing import Any

from queues.models import AuditLog

# Who made a change: a user (admin, API), a label ("manage.py", "scheduler"), or None
# (Python code that did not say).
Actor = Any


def record(*, by: Actor, action: str, target: str = "", count: int = 0, **detail: Any) -> AuditLog:
    """Write one audit row. ``by`` is a user, a label, or None."""
    if isinstance(by, str):
        user, username = None, by
    elif by is not None and getattr(by, "is_authenticated", False):
        user, username = by, by.get_username()
    else:
        user, username = None, ""
    return AuditLog.objects.create(
        user=user, username=username, action=action, target=target, count=count, detail=detail
    )
