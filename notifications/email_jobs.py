"""Email handlers: send-email, send-batch-email, send-scheduled-email.

Flow: validate (10) -> send (30 -> 80) -> record (100). Each step is also a log line, so
the job's history shows it.
"""

from __future__ import annotations

from notifications import mail
from queues import job
from queues.exceptions import PermanentError

EMAIL_OPTIONS = {
    "queue": "email",
    "attempts": 3,
    "backoff": {"type": "exponential", "delay": 2000},
}

_ADDRESSES = {"type": ["string", "array"], "items": {"type": "string"}}
_MAYBE_ADDRESSES = {"type": ["string", "array", "null"], "items": {"type": "string"}}
_MAYBE_TEXT = {"type": ["string", "null"]}

# One message (EmailJobData): its shape and types. mail.build checks the rest when the job
# runs (addresses, a one-line subject, text or html, attachments) and fails it with why.
EMAIL_SCHEMA = {
    "type": "object",
    "properties": {
        "to": _ADDRESSES,
        "subject": {"type": "string"},
        "text": _MAYBE_TEXT,
        "html": _MAYBE_TEXT,
        "cc": _MAYBE_ADDRESSES,
        "bcc": _MAYBE_ADDRESSES,
        "from": _MAYBE_TEXT,
        "attachments": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {
                    "filename": {"type": "string"},
                    "path": _MAYBE_TEXT,
                    "content": _MAYBE_TEXT,
                    "content_base64": _MAYBE_TEXT,
                    "contentType": _MAYBE_TEXT,
                },
            },
        },
    },
    "required": ["to", "subject"],
}

EMAIL_EXAMPLE = {
    "to": ["ops@example.com"],
    "subject": "Nightly export ready",
    "text": "The nightly export finished: 2005 rows.",
}


def _step(ctx, pct: int, what: str) -> None:
    ctx.progress(pct)
    ctx.log(f"{pct}% {what}")


def _send_one(ctx, payload) -> dict:
    message = mail.build(payload)
    _step(ctx, 10, f"validated: to {', '.join(message.to)}")
    _step(ctx, 30, "sending")
    mail.send([message])
    _step(ctx, 80, "sent")
    result = {
        "to": message.to,
        "cc": message.cc,
        "subject": message.subject,
        "recipients": len(message.recipients()),
    }
    _step(ctx, 100, "recorded")
    return result


@job("send-email", example=EMAIL_EXAMPLE, schema=EMAIL_SCHEMA, **EMAIL_OPTIONS)
def send_email(ctx, payload):
    return _send_one(ctx, payload)


@job("send-scheduled-email", example=EMAIL_EXAMPLE, schema=EMAIL_SCHEMA, **EMAIL_OPTIONS)
def send_scheduled_email(ctx, payload):
    """The same message, enqueued to run at a given time (``run_at``)."""
    return _send_one(ctx, payload)


@job(
    "send-batch-email",
    queue="email",
    attempts=3,
    priority=7,
    backoff={"type": "exponential", "delay": 2000},
    example={
        "emails": [
            EMAIL_EXAMPLE,
            {"to": "alice@example.com", "subject": "Welcome", "html": "<p>Welcome aboard</p>"},
        ]
    },
    # Each message is only an object here: a malformed one is reported in the result as
    # failed while the others are still sent.
    schema={
        "type": "object",
        "properties": {"emails": {"type": "array", "minItems": 1, "items": {"type": "object"}}},
        "required": ["emails"],
    },
)
def send_batch_email(ctx, payload):
    """``{"emails": [EmailJobData, ...]}``: one after another over one connection; each
    message's outcome is in the result and a failure does not stop the rest."""
    emails = (payload or {}).get("emails")
    if not isinstance(emails, list) or not emails:
        raise PermanentError("'emails' must be a non-empty list of messages")
    _step(ctx, 10, f"{len(emails)} messages")
    results, connection = [], None
    try:
        for index, data in enumerate(emails):
            to = data.get("to") if isinstance(data, dict) else None
            try:
                message = mail.build(data)
                connection = connection or mail.open_connection()
                mail.send([message], connection)
                results.append({"index": index, "to": to, "ok": True})
            except Exception as exc:  # one bad message or refusal: note it, go on
                results.append(
                    {"index": index, "to": to, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
                )
                if isinstance(exc, mail.TRANSIENT_SMTP) and connection is not None:
                    connection.close()
                    connection = None
            ctx.progress(10 + (index + 1) * 80 // len(emails))
    finally:
        if connection is not None:
            connection.close()
    sent = sum(1 for r in results if r["ok"])
    _step(ctx, 100, f"recorded: {sent} sent, {len(results) - sent} failed")
    return {"sent": sent, "failed": len(results) - sent, "results": results}


@job(
    "send-push",
    queue="notification",
    attempts=3,
    backoff={"type": "exponential", "delay": 2000},
    example={"to": "ops-device", "title": "Export ready", "body": "2005 rows exported"},
    schema={
        "type": "object",
        "properties": {
            "to": {"type": "string"},
            "title": {"type": "string"},
            "body": {"type": "string"},
        },
        "required": ["to"],
    },
)
def send_push(ctx, payload):
    """No push service is wired in, so nothing leaves the platform: the notification is
    written to the job's log and returned as its result (``"provider": "log"``)."""
    to, title = payload.get("to"), payload.get("title", "")
    if not to:
        raise PermanentError("a push notification needs 'to' (a device or user token)")
    ctx.log(f"push to {to}: {title}")
    return {"provider": "log", "to": to, "title": title, "body": payload.get("body", "")}
