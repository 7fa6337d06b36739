"""Email messages: validate, build, send through Django's email backend (SMTP, console,
file ... from the settings)."""

from __future__ import annotations

import base64
import mimetypes
import smtplib
import socket
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from django.utils.translation import gettext

from queues.exceptions import PermanentError

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class InvalidEmail(PermanentError):
    """The message can never be sent as given."""


def addresses(value: Any, field: str, *, required: bool = False) -> list[str]:
    """One address or a list of them, each checked; raises InvalidEmail naming the bad one."""
    if value in (None, "", []):
        if required:
            raise InvalidEmail(gettext("'%(field)s' is required") % {"field": field})
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidEmail(
            gettext("'%(field)s' must be an address or a list of addresses") % {"field": field}
        )
    for item in items:
        _, addr = parseaddr(item)
        try:
            validate_email(addr)
        except ValidationError:
            raise InvalidEmail(
                gettext("'%(field)s' has a malformed address: %(address)r")
                % {"field": field, "address": item}
            ) from None
    return items


def _attachment(item: Any, index: int) -> tuple[str, bytes, str]:
    if not isinstance(item, dict) or not item.get("filename"):
        raise InvalidEmail(gettext("attachment #%(index)s needs a filename") % {"index": index})
    name = str(item["filename"])
    if item.get("path"):
        root = Path(settings.EMAIL_ATTACHMENT_ROOT).resolve()
        path = Path(item["path"])
        path = (path if path.is_absolute() else root / path).resolve()
        if root not in path.parents:
            raise InvalidEmail(
                gettext("attachment %(name)r: only files under %(root)s can be attached")
                % {"name": name, "root": root}
            )
        if not path.is_file():
            raise InvalidEmail(
                gettext("attachment %(name)r: no file at %(path)s") % {"name": name, "path": path}
            )
        data = path.read_bytes()
    elif item.get("content_base64") is not None:
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except ValueError:
            raise InvalidEmail(
                gettext("attachment %(name)r: content_base64 is not base64") % {"name": name}
            ) from None
    elif item.get("content") is not None:
        data = str(item["content"]).encode()
    else:
        raise InvalidEmail(
            gettext("attachment %(name)r needs a path, content or content_base64") % {"name": name}
        )
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidEmail(
            gettext("attachment %(name)r is over %(max)s bytes")
            % {"name": name, "max": MAX_ATTACHMENT_BYTES}
        )
    mimetype = (
        item.get("contentType") or mimetypes.guess_type(name)[0] or "application/octet-stream"
    )
    return name, data, mimetype


def build(data: Any) -> EmailMultiAlternatives:
    """A ready-to-send message from an email payload (``to``, ``subject``, ``text`` and/or
    ``html``, optional ``cc``, ``bcc``, ``from``, ``attachments``); InvalidEmail if
    malformed."""
    if not isinstance(data, dict):
        raise InvalidEmail(gettext("the email payload must be an object"))
    to = addresses(data.get("to"), "to", required=True)
    cc = addresses(data.get("cc"), "cc")
    bcc = addresses(data.get("bcc"), "bcc")
    sender = data.get("from") or settings.DEFAULT_FROM_EMAIL
    addresses(sender, "from")
    subject = data.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidEmail(gettext("'%(field)s' is required") % {"field": "subject"})
    if "\n" in subject or "\r" in subject:
        raise InvalidEmail(gettext("'subject' must be one line"))
    text, html = data.get("text"), data.get("html")
    if not text and not html:
        raise InvalidEmail(gettext("the message needs 'text' or 'html'"))
    message = EmailMultiAlternatives(
        subject=subject, body=text or "", from_email=sender, to=to, cc=cc, bcc=bcc
    )
    if html:
        if text:
            message.attach_alternative(html, "text/html")
        else:
            message.body, message.content_subtype = html, "html"
    for index, item in enumerate(data.get("attachments") or []):
        message.attach(*_attachment(item, index))
    return message


# A refused recipient or a rejected message is final; a connection problem is worth a retry.
PERMANENT_SMTP = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)
TRANSIENT_SMTP = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    socket.timeout,
    OSError,
)


def send(messages: list[EmailMultiAlternatives], connection=None) -> None:
    """Send through the configured backend; permanent SMTP refusals become PermanentError."""
    connection = connection or get_connection(fail_silently=False)
    try:
        connection.send_messages(messages)
    except PERMANENT_SMTP as exc:
        raise PermanentError(f"the mail server refused the message: {exc}") from None


def open_connection():
    connection = get_connection(fail_silently=False)
    connection.open()
    return connection
