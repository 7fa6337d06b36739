"""How long something took, in whole milliseconds: attempt rows, metrics buckets, the
admin and the API all count it the same way."""

from __future__ import annotations

from datetime import datetime, timedelta


def duration_ms(started_at: datetime | None, finished_at: datetime | None) -> int | None:
    """Milliseconds from ``started_at`` to ``finished_at`` (truncated, never negative);
    None when either is missing."""
    if started_at is None or finished_at is None:
        return None
    # Integer division of timedeltas: exact, where float seconds * 1000 can lose 1 ms.
    return max((finished_at - started_at) // timedelta(milliseconds=1), 0)
