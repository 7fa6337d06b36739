"""Notification templates and subscriptions: one domain event, every subscribed channel."""

from django.core.exceptions import ValidationError
from django.db import models
from django.template import Engine, TemplateSyntaxError


def check_template(fields: dict[str, str]) -> None:
    """A template that does not compile is refused when saved, not when an event fires."""
    errors = {}
    for field, source in fields.items():
        try:
            Engine().from_string(source or "")
        except TemplateSyntaxError as exc:
            errors[field] = f"not a valid template: {exc}"
    if errors:
        raise ValidationError(errors)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    WEBHOOK = "webhook", "Webhook"


class NotificationTemplate(models.Model):
    """A message with variables (Django template syntax), editable in the admin."""

    name = models.SlugField(max_length=100, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    subject = models.CharField(
        max_length=300, blank=True, default="", help_text="Email subject / push title."
    )
    body = models.TextField(help_text="Text body; e.g. 'Welcome, {{ user.name }}!'")
    html_body = models.TextField(blank=True, default="", help_text="Email only (optional).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"

    def clean(self) -> None:
        check_template({"subject": self.subject, "body": self.body, "html_body": self.html_body})


class Subscription(models.Model):
    """Deliver ``event`` on ``template``'s channel to ``recipient`` (itself a template,
    e.g. ``{{ user.email }}``, a phone number, or a webhook URL)."""

    event = models.CharField(max_length=100, help_text="e.g. user.registered")
    template = models.ForeignKey(
        NotificationTemplate, on_delete=models.PROTECT, related_name="subscriptions"
    )
    recipient = models.CharField(max_length=500)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "id"]
        indexes = [models.Index(fields=["event", "active"], name="subscription_event_idx")]

    def __str__(self) -> str:
        return f"{self.event} -> {self.template}"

    def clean(self) -> None:
        check_template({"recipient": self.recipient})
