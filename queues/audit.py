"""The audit log: every operator action from the admin or the API, with its size."""

from __future__ import annotations

from typing import Any

from queues.models import AuditLog


def record(*, user, action: str, target: str = "", count: int = 0, **detail: Any) -> AuditLog:
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AuditLog.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        target=target,
        count=count,
        detail=detail,
    )
