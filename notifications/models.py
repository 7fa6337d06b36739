"""Notification templates and subscriptions: one domain event, every subscribed channel."""

from django.core.exceptions import ValidationError
from django.db import models
from django.template import Engine, TemplateSyntaxError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


def check_template(fields: dict[str, str]) -> None:
    """A template that does not compile is refused when saved, not when an event fires."""
    errors = {}
    for field, source in fields.items():
        try:
            Engine().from_string(source or "")
        except TemplateSyntaxError as exc:
            errors[field] = gettext("not a valid template: %(error)s") % {"error": exc}
    if errors:
        raise ValidationError(errors)


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")
    WEBHOOK = "webhook", _("Webhook")


class NotificationTemplate(models.Model):
    """A message with variables (Django template syntax), editable in the admin."""

    name = models.SlugField(_("name"), max_length=100, unique=True)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    subject = models.CharField(
        _("subject"),
        max_length=300,
        blank=True,
        default="",
        help_text=_("Email subject / push title."),
    )
    body = models.TextField(_("body"), help_text=_("Text body; e.g. 'Welcome, {{ user.name }}!'"))
    html_body = models.TextField(
        _("HTML body"), blank=True, default="", help_text=_("Email only (optional).")
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("notification template")
        verbose_name_plural = _("notification templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel})"

    def clean(self) -> None:
        check_template({"subject": self.subject, "body": self.body, "html_body": self.html_body})


class Subscription(models.Model):
    """Deliver ``event`` on ``template``'s channel to ``recipient`` (itself a template,
    e.g. ``{{ user.email }}``, a phone number, or a webhook URL)."""

    event = models.CharField(_("event"), max_length=100, help_text=_("e.g. user.registered"))
    template = models.ForeignKey(
        NotificationTemplate,
        on_delete=models.PROTECT,
        related_name="subscriptions",
        verbose_name=_("template"),
    )
    recipient = models.CharField(_("recipient"), max_length=500)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["event", "id"]
        indexes = [models.Index(fields=["event", "active"], name="subscription_event_idx")]

    def __str__(self) -> str:
        return f"{self.event} -> {self.template}"

    def clean(self) -> None:
        check_template({"recipient": self.recipient})
