"""Enqueue SMS: one message, a verification code, a batch. Each returns the enqueued
``Job``; ``options`` are ``enqueue``'s (``delay``, ``run_at``, ``priority``,
``unique_key``, ``webhook_url``...).

    send_sms("13800138000", "Your order has been shipped", provider="aliyun")
    job = send_verification_code("13800138000")   # code in job.payload["code"]
    send_batch_sms(["13800138000", "13900139000"], "Notification")
    send_batch_sms([{"phone": "13800138000", "message": "Notification 1"},
                    {"phone": "13900139000", "message": "Notification 2"}])
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext

from notifications.sms.errors import InvalidSmsPayload, UnknownProvider
from notifications.sms.handlers import DEFAULT_EXPIRES_IN, MAX_BATCH, check_code
from notifications.sms.phones import normalize_phone
from notifications.sms.providers import PROVIDERS
from queues import enqueue
from queues.models import Job


def _check_provider(provider: str | None) -> None:
    if provider is not None and provider not in PROVIDERS:
        raise UnknownProvider(
            gettext("unknown SMS provider %(name)r (known: %(known)s)")
            % {"name": provider, "known": ", ".join(PROVIDERS)}
        )


def _message_payload(message, template, variables, provider) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if message is not None:
        payload["message"] = message
    if template is not None:
        payload["template"] = template
    if variables is not None:
        payload["variables"] = dict(variables)
    if provider is not None:
        payload["provider"] = provider
    return payload


def send_sms(
    phone: str,
    message: str,
    *,
    template: str | None = None,
    variables: Mapping[str, Any] | None = None,
    provider: str | None = None,
    **options: Any,
) -> Job:
    """Enqueue ``send-sms`` (queue ``sms``, NORMAL). A malformed phone, an empty message
    or an unknown provider raise (a ``ValueError``) and enqueue nothing."""
    normalize_phone(phone)
    if not isinstance(message, str) or not message.strip():
        raise InvalidSmsPayload(gettext("message must be a non-empty string"))
    _check_provider(provider)
    payload = {"phone": phone, **_message_payload(message, template, variables, provider)}
    return enqueue("send-sms", payload, **options)


def generate_code() -> str:
    """Six digits, 100000 to 999999, from a CSPRNG."""
    return str(100000 + secrets.randbelow(900000))


def send_verification_code(
    phone: str,
    code: str | None = None,
    expires_in: int = DEFAULT_EXPIRES_IN,
    *,
    provider: str | None = None,
    **options: Any,
) -> Job:
    """Enqueue ``send-verification-code`` (queue ``sms``, CRITICAL) with ``code`` or a
    fresh six-digit one; the caller reads it from ``job.payload["code"]`` to store it
    (e.g. in Redis for ``expires_in`` minutes) and check what the user types."""
    normalize_phone(phone)
    code = generate_code() if code is None else check_code(code)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise InvalidSmsPayload(gettext("expires_in must be a whole number of minutes, at least 1"))
    _check_provider(provider)
    payload: dict[str, Any] = {"phone": phone, "code": code, "expiresIn": expires_in}
    if provider is not None:
        payload["provider"] = provider
    return enqueue("send-verification-code", payload, **options)


def send_batch_sms(
    recipients: Sequence[str | Mapping[str, Any]],
    message: str | None = None,
    *,
    template: str | None = None,
    variables: Mapping[str, Any] | None = None,
    provider: str | None = None,
    **options: Any,
) -> Job:
    """Enqueue one ``send-batch-sms`` job: ``recipients`` are phone numbers (all sent
    ``message``) or ``{"phone", "message"}`` items. Numbers are checked when
    the batch runs: a bad one is reported in the result and the others are still sent."""
    if isinstance(recipients, str) or not recipients:
        raise InvalidSmsPayload(gettext("recipients must be a non-empty list"))
    if len(recipients) > MAX_BATCH:
        raise InvalidSmsPayload(
            gettext("a batch holds at most %(max)s messages") % {"max": MAX_BATCH}
        )
    items = [dict(r) if isinstance(r, Mapping) else {"phone": r} for r in recipients]
    if message is None and any("message" not in item for item in items):
        raise InvalidSmsPayload(gettext("give message, or a message in every recipient"))
    _check_provider(provider)
    payload = {"messages": items, **_message_payload(message, template, variables, provider)}
    return enqueue("send-batch-sms", payload, **options)
