"""Enqueue notifications (email, SMS), and fan an event out to its subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.template import Context, Engine
from django.utils.translation import gettext

from notifications import mail
from notifications.models import Channel, Subscription
from notifications.sms import services as sms_services
from queues import Priority, enqueue, enqueue_many
from queues.exceptions import EnqueueError
from queues.models import Job

_engine = Engine(autoescape=False)
_html_engine = Engine(autoescape=True)


def _email_data(
    to, subject, *, text=None, html=None, cc=None, bcc=None, sender=None, attachments=None
) -> dict:
    data = {
        "to": to,
        "subject": subject,
        "text": text,
        "html": html,
        "cc": cc,
        "bcc": bcc,
        "from": sender,
        "attachments": attachments,
    }
    data = {k: v for k, v in data.items() if v not in (None, [], "")}
    try:
        mail.build(data)  # refuse a malformed message now, not at run time
    except mail.InvalidEmail as exc:
        raise EnqueueError(str(exc)) from None
    return data


def send_email(
    to,
    subject: str,
    *,
    text: str | None = None,
    html: str | None = None,
    cc=None,
    bcc=None,
    sender: str | None = None,
    attachments=None,
    priority: int = Priority.NORMAL,
    delay=None,
) -> Job:
    data = _email_data(
        to, subject, text=text, html=html, cc=cc, bcc=bcc, sender=sender, attachments=attachments
    )
    return enqueue("send-email", data, priority=priority, delay=delay)


def send_scheduled_email(
    to,
    subject: str,
    *,
    at: datetime,
    text: str | None = None,
    html: str | None = None,
    **options: Any,
) -> Job:
    data = _email_data(to, subject, text=text, html=html, **options)
    return enqueue("send-scheduled-email", data, run_at=at)


def send_batch_email(messages: list[dict], *, priority: int = Priority.LOW) -> Job:
    """One job sending every message in turn, at LOW priority by default."""
    if not isinstance(messages, list) or not messages:
        raise EnqueueError(gettext("messages must be a non-empty list"))
    return enqueue("send-batch-email", {"emails": messages}, priority=priority)


# The SMS sends live with the rest of SMS; these are the same functions under this module.
send_sms = sms_services.send_sms
send_verification_code = sms_services.send_verification_code
send_batch_sms = sms_services.send_batch_sms


def render(source: str, context: dict, *, html: bool = False) -> str:
    engine = _html_engine if html else _engine
    return engine.from_string(source).render(Context(context, autoescape=html))


def publish_event(event: str, context: dict[str, Any]) -> list[Job]:
    """Deliver ``event`` to every active subscription, each delivery its own job on its
    channel's queue (email, sms, push, webhook), in one transaction."""
    if not isinstance(event, str) or not event:
        raise EnqueueError(gettext("an event name is required, e.g. 'user.registered'"))
    specs = []
    subscriptions = Subscription.objects.filter(event=event, active=True).select_related("template")
    for sub in subscriptions:
        template = sub.template
        recipient = render(sub.recipient, context).strip()
        text = render(template.body, context)
        subject = render(template.subject, context)
        if template.channel == Channel.EMAIL:
            html = render(template.html_body, context, html=True) if template.html_body else None
            specs.append(
                {
                    "name": "send-email",
                    "payload": _email_data(recipient, subject, text=text, html=html),
                }
            )
        elif template.channel == Channel.SMS:
            specs.append({"name": "send-sms", "payload": {"phone": recipient, "message": text}})
        elif template.channel == Channel.PUSH:
            specs.append(
                {"name": "send-push", "payload": {"to": recipient, "title": subject, "body": text}}
            )
        else:
            specs.append(
                {
                    "name": "platform.webhook",
                    "payload": {
                        "url": recipient,
                        "event": {"type": event, "data": context, "text": text},
                    },
                }
            )
    if not specs:
        return []
    with transaction.atomic():
        return enqueue_many(specs)
