"""Notification handlers: email, SMS and fan-out (each channel in its own module)."""

from notifications import email_jobs  # noqa: F401  (registers send-email & co.)
from notifications.sms import handlers  # noqa: F401  (registers send-sms & co.)
