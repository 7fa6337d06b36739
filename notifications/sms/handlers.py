"""SMS handlers: send-sms, send-batch-sms, send-verification-code.

Payloads: ``phone``, ``message``, optional ``template``
(a template name, mapped per provider by ``SMS_<PROVIDER>_TEMPLATES``), ``variables`` and
``provider`` (else ``SMS_PROVIDER``). Every message first uses one unit of its phone's
shared limit, 10 per minute: past it the job waits
(``delayed``) for the window to end without using an attempt.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext, ngettext

from notifications.sms.errors import InvalidSmsPayload
from notifications.sms.phones import mask, normalize_phone
from notifications.sms.providers import SmsProvider, get_provider
from queues import Priority, RateLimited, enqueue, job
from queues.exceptions import PermanentError
from queues.models import Job

PER_PHONE_LIMIT = 10
PER_PHONE_WINDOW = 60  # seconds
# Every SMS job: 3 attempts, exponential backoff from 2 s.
SMS_RETRY = {"attempts": 3, "backoff": {"type": "exponential", "delay": 2000}}
MAX_BATCH = 1000
VERIFICATION_TEMPLATE = "verification_code"
DEFAULT_EXPIRES_IN = 5  # minutes
RETRY_DEFERRED_AFTER = 2  # seconds: the first step of SMS_RETRY's backoff


def phone_limit_key(phone: str) -> str:
    """The shared rate-limit key of a (normalized, E.164) phone number."""
    return f"sms:phone:{phone}"


def deliver(
    ctx,
    provider: SmsProvider,
    *,
    phone: str,
    message: str,
    template: str | None = None,
    variables: dict[str, Any] | None = None,
    log: bool = True,
) -> dict[str, Any]:
    """Use one unit of the phone's limit (``RateLimited`` propagates), then send."""
    ctx.rate_limit(phone_limit_key(phone), limit=PER_PHONE_LIMIT, per=PER_PHONE_WINDOW)
    if log:
        ctx.log(f"sending via {provider.name} to {mask(phone)}")
    sent = provider.send(phone, message, template=template, params=variables)
    if log:
        ctx.log(f"{provider.name} accepted it: message id {sent.get('message_id')}")
    return sent


def check_code(code: object) -> str:
    """A verification code: a string of 4 to 8 ASCII digits."""
    if not isinstance(code, str) or not (code.isascii() and code.isdigit()):
        raise InvalidSmsPayload(gettext("code must be a string of 4 to 8 digits"))
    if not 4 <= len(code) <= 8:
        raise InvalidSmsPayload(gettext("code must be a string of 4 to 8 digits"))
    return code


def verification_message(code: str, expires_in: int) -> str:
    """The verification text when no provider template is used, in the active language
    (a worker's is ``LANGUAGE_CODE``)."""
    return ngettext(
        "Your verification code is: %(code)s. Valid for %(expires_in)s minute.",
        "Your verification code is: %(code)s. Valid for %(expires_in)s minutes.",
        expires_in,
    ) % {"code": code, "expires_in": expires_in}


def _mapping(payload: object, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidSmsPayload(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def _message_fields(item: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict:
    """``phone`` (normalized), ``message``, ``template``, ``variables`` of one message."""
    defaults = defaults or {}
    message = item.get("message", defaults.get("message"))
    if not isinstance(message, str) or not message.strip():
        raise InvalidSmsPayload("message must be a non-empty string")
    template = item.get("template", defaults.get("template"))
    if template is not None and not isinstance(template, str):
        raise InvalidSmsPayload("template must be a string")
    variables = item.get("variables", defaults.get("variables"))
    if variables is not None and not isinstance(variables, dict):
        raise InvalidSmsPayload("variables must be a JSON object")
    phone = item.get("phone")
    if isinstance(phone, list):
        raise InvalidSmsPayload("send-sms takes one phone; use send-batch-sms for a list")
    return {
        "phone": normalize_phone(phone),
        "message": message,
        "template": template,
        "variables": variables,
    }


# The payload schemas give shapes and types. Phone numbers and blank messages are checked
# when a job runs, which fails the job (or one message of a batch) with the reason: an
# event's subscriptions render both from templates, and one that renders badly must not
# keep the event's other deliveries from being enqueued.
_OPTIONAL = {
    "template": {"type": ["string", "null"]},
    "variables": {"type": ["object", "null"]},
    "provider": {"type": ["string", "null"]},
}


@job(
    "send-sms",
    queue="sms",
    priority=Priority.NORMAL,
    timeout=30,
    example={"phone": "+8613800138000", "message": "Your order has been shipped"},
    schema={
        "type": "object",
        "properties": {"phone": {"type": "string"}, "message": {"type": "string"}, **_OPTIONAL},
        "required": ["phone", "message"],
    },
    **SMS_RETRY,
)
def send_sms(ctx, payload):
    """``{"phone", "message", "template"?, "variables"?, "provider"?}``."""
    ctx.progress(10)
    fields = _message_fields(_mapping(payload, "payload"))
    provider = get_provider(payload.get("provider"))
    ctx.progress(30)
    sent = deliver(ctx, provider, **fields)
    ctx.progress(100)
    return {"phone": fields["phone"], **sent}


@job(
    "send-verification-code",
    queue="sms",
    priority=Priority.CRITICAL,
    timeout=30,
    example={"phone": "+8613800138000", "code": "472913", "expiresIn": 5},
    schema={
        "type": "object",
        "properties": {
            "phone": {"type": "string"},
            "code": {"type": "string", "pattern": "^[0-9]{4,8}$"},
            "expiresIn": {"type": "integer", "minimum": 1},
            "provider": {"type": ["string", "null"]},
        },
        "required": ["phone", "code"],
    },
    **SMS_RETRY,
)
def send_verification_code(ctx, payload):
    """``{"phone", "code", "expiresIn"? (minutes, 5), "provider"?}``: verification_message()
    and template ``verification_code`` with variables ``code`` and ``expiresIn``."""
    ctx.progress(10)
    payload = _mapping(payload, "payload")
    phone = normalize_phone(payload.get("phone"))
    code = check_code(payload.get("code"))
    expires_in = payload.get("expiresIn", DEFAULT_EXPIRES_IN)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise InvalidSmsPayload("expiresIn must be a whole number of minutes, at least 1")
    _refuse_expired(ctx, expires_in)
    provider = get_provider(payload.get("provider"))
    ctx.progress(30)
    sent = deliver(
        ctx,
        provider,
        phone=phone,
        message=verification_message(code, expires_in),
        template=VERIFICATION_TEMPLATE,
        variables={"code": code, "expiresIn": expires_in},
    )
    ctx.progress(100)
    return {"phone": phone, "expiresIn": expires_in, **sent}


def _refuse_expired(ctx, expires_in: int) -> None:
    # A code that waited out its validity (queue paused, retries, rate limit) would only
    # confuse its reader: fail instead of sending it.
    created = Job.objects.filter(pk=ctx.job_id).values_list("created_at", flat=True).first()
    if created and timezone.now() >= created + timedelta(minutes=expires_in):
        raise PermanentError(
            f"the code expired ({expires_in} minutes after it was requested) before it was sent"
        )


@job(
    "send-batch-sms",
    queue="sms",
    priority=Priority.NORMAL,
    example={
        "messages": [
            {"phone": "+8613800138000", "message": "Your order has shipped"},
            {"phone": "+8613900139000"},
        ],
        "message": "Your order is on its way",
    },
    # Each message is only an object here: a bad one is reported in the result as failed
    # while the others are still sent.
    schema={
        "type": "object",
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": {"type": "object"},
            },
            "phone": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH},
            "message": {"type": ["string", "null"]},
            **_OPTIONAL,
        },
        "anyOf": [{"required": ["messages"]}, {"required": ["phone"]}],
    },
    **SMS_RETRY,
)
def send_batch_sms(ctx, payload):
    """``{"messages": [{"phone", "message"?, "template"?, "variables"?}, ...], "message"?,
    "template"?, "variables"?, "provider"?}`` (item fields override the batch's), or
    ``{"phone": [...], "message"}`` (one message to many numbers).

    Messages are sent one after another. Each gets an outcome in the result: ``sent``,
    ``failed`` (a permanent error: bad number, refused by the provider) or ``deferred``
    (rate limited or provider unavailable: handed to its own ``send-sms`` job, whose id is
    given, with its own retries); one message's failure never stops the others.
    """
    ctx.progress(10)
    payload = _mapping(payload, "payload")
    items = payload.get("messages")
    if items is None and isinstance(payload.get("phone"), list):
        items = [{"phone": phone} for phone in payload["phone"]]
    if not isinstance(items, list) or not items:
        raise InvalidSmsPayload("messages must be a non-empty list (or phone a list of numbers)")
    if len(items) > MAX_BATCH:
        raise InvalidSmsPayload(f"a batch holds at most {MAX_BATCH} messages, got {len(items)}")
    provider_name = payload.get("provider")
    provider = get_provider(provider_name)
    ctx.log(f"sending {len(items)} messages via {provider.name}")
    results, shown = [], 10
    for index, item in enumerate(items):
        results.append(_batch_one(ctx, provider, index, item, payload, provider_name))
        pct = 10 + 90 * (index + 1) // len(items)
        if pct != shown:
            ctx.progress(pct)
            shown = pct
    counts = {s: sum(r["status"] == s for r in results) for s in ("sent", "failed", "deferred")}
    ctx.log(", ".join(f"{n} {s}" for s, n in counts.items()))
    return {"total": len(items), **counts, "results": results}


def _batch_one(ctx, provider, index, item, batch, provider_name) -> dict[str, Any]:
    try:
        fields = _message_fields(_mapping(item, f"messages[{index}]"), batch)
    except PermanentError as exc:
        raw_phone = item.get("phone") if isinstance(item, dict) else item
        return {"phone": raw_phone, "status": "failed", "error": str(exc)}
    try:
        sent = deliver(ctx, provider, **fields, log=False)
    except PermanentError as exc:
        return {"phone": fields["phone"], "status": "failed", "error": str(exc)}
    except RateLimited as exc:
        return _defer(ctx, index, fields, provider_name, exc, delay=exc.retry_in)
    except Exception as exc:  # ProviderUnavailable or unexpected: its own job retries it
        return _defer(ctx, index, fields, provider_name, exc, delay=RETRY_DEFERRED_AFTER)
    return {"phone": fields["phone"], **sent, "status": "sent"}


def _defer(ctx, index, fields, provider_name, exc, *, delay: float) -> dict[str, Any]:
    payload = {k: v for k, v in fields.items() if v is not None}
    if provider_name:
        payload["provider"] = provider_name
    # The key keeps a re-run of this batch from deferring the same message twice.
    follow_up = enqueue(
        "send-sms", payload, delay=delay, unique_key=f"sms-batch:{ctx.job_id}:{index}"
    )
    return {
        "phone": fields["phone"],
        "status": "deferred",
        "job_id": str(follow_up.id),
        "error": f"{type(exc).__name__}: {exc}",
    }
