"""Retry delay math. Backoff is written in milliseconds, as Bull writes it:
``{"type": "exponential", "delay": 2000, "max_delay": 60000}`` gives 2 s, 4 s, 8 s, ...
``{"type": "fixed", "delay": 5000}`` gives 5 s every time."""

from typing import Any

from django.utils.translation import gettext

from queues.exceptions import EnqueueError

BACKOFF_TYPES = ("fixed", "exponential")


def normalize_backoff(value: Any) -> dict:
    """Validate a backoff spec and return it as a plain dict; raise EnqueueError if bad.

    Also accepts the decorator shorthand ``("exponential", 2000)`` and a bare number of
    milliseconds (fixed).
    """
    if isinstance(value, bool):
        raise EnqueueError(
            gettext("backoff must be a dict like %(example)s, got %(value)s")
            % {"example": "{'type': 'fixed', 'delay': 1000}", "value": repr(value)}
        )
    if isinstance(value, int | float):
        value = {"type": "fixed", "delay": value}
    elif isinstance(value, tuple | list) and len(value) in (2, 3):
        value = dict(zip(("type", "delay", "max_delay"), value, strict=False))
    if not isinstance(value, dict):
        raise EnqueueError(
            gettext("backoff must be a dict like %(example)s, got %(value)s")
            % {"example": "{'type': 'exponential', 'delay': 2000}", "value": repr(value)}
        )
    unknown = set(value) - {"type", "delay", "max_delay"}
    if unknown:
        raise EnqueueError(
            gettext("backoff has unknown keys %(keys)s; use type, delay, max_delay")
            % {"keys": sorted(unknown)}
        )
    kind = value.get("type", "fixed")
    if kind not in BACKOFF_TYPES:
        raise EnqueueError(
            gettext("backoff type must be one of %(types)s, got %(type)s")
            % {"types": BACKOFF_TYPES, "type": repr(kind)}
        )
    result = {"type": kind, "delay": _milliseconds(value.get("delay", 0), "delay")}
    if value.get("max_delay") is not None:
        result["max_delay"] = _milliseconds(value["max_delay"], "max_delay")
    return result


def _milliseconds(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EnqueueError(
            gettext("backoff %(key)s must be a number of milliseconds >= 0, got %(value)s")
            % {"key": key, "value": repr(value)}
        )
    return int(value)


# An exponential backoff without its own max_delay stops growing at one hour; no backoff,
# whatever it says, plans a retry more than a week away (a datetime cannot overflow).
DEFAULT_MAX_DELAY_MS = 3_600_000
ABSOLUTE_MAX_DELAY_MS = 7 * 24 * 3_600_000


def retry_delay_ms(backoff: dict, failed_attempt: int) -> int:
    """Delay before the retry that follows failed attempt number ``failed_attempt`` (1-based)."""
    delay = int(backoff.get("delay", 0))
    max_delay = backoff.get("max_delay")
    if backoff.get("type") == "exponential":
        # Cap the exponent: 2**62 ms is already far beyond any max_delay.
        delay = delay * 2 ** min(max(failed_attempt - 1, 0), 62)
        if max_delay is None:
            max_delay = DEFAULT_MAX_DELAY_MS
    if max_delay is not None:
        delay = min(delay, int(max_delay))
    return min(delay, ABSOLUTE_MAX_DELAY_MS)
