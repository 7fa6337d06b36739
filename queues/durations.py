"""How long something took, in whole milliseconds: attempt rows, metrics buckets, the
admin and the API all count it the same way."""

from __future__ import annotations

from datetime import datetime


def duration_ms(started_at: datetime | None, finished_at: datetime | None) -> int | None:
    """Milliseconds from ``started_at`` to ``finished_at`` (truncated, never negative);
    None when either is missing."""
    if started_at is None or finished_at is None:
        return None
    return max(int((finished_at - started_at).total_seconds() * 1000), 0)
