"""Forms of the queues admin pages that are not a model's own change form."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from queues.models import Job, Queue
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.registry import handler_names


class JsonField(forms.CharField):
    """A JSON document typed into a textarea; a clear error when it does not parse."""

    widget = forms.Textarea(
        attrs={"rows": 10, "cols": 80, "class": "jp-code", "spellcheck": "false"}
    )

    def to_python(self, value):
        text = super().to_python(value)
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(
                _("This is not valid JSON: %(error)s"), params={"error": exc}
            ) from None

    def prepare_value(self, value):
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


# Labels are capitalised here, as the admin shows a model field's verbose name: a plain
# form's label is shown as it is written.


class JobEditForm(forms.Form):
    """A job's payload, queue, priority and delay, before it runs (again)."""

    payload = JsonField(label=_("Payload"), required=False)
    queue = forms.ChoiceField(label=_("Queue"))
    priority = forms.IntegerField(
        label=_("Priority"),
        min_value=MIN_PRIORITY,
        max_value=MAX_PRIORITY,
        help_text=format_lazy(
            _("{low} runs first, {high} last."), low=MIN_PRIORITY, high=MAX_PRIORITY
        ),
    )
    delay = forms.FloatField(
        label=_("Delay (seconds)"),
        required=False,
        min_value=0,
        help_text=_("Blank keeps the job's timing; 0 runs it as soon as a worker is free."),
    )

    def __init__(self, *args, job: Job, **kwargs):
        kwargs.setdefault(
            "initial", {"payload": job.payload, "queue": job.queue.name, "priority": job.priority}
        )
        super().__init__(*args, **kwargs)
        self.job = job
        names = Queue.objects.order_by("name").values_list("name", flat=True)
        self.fields["queue"].choices = [(n, n) for n in names]

    def changes(self) -> dict[str, Any]:
        """``edit_job``'s keyword arguments."""
        data = self.cleaned_data
        return {
            "payload": data["payload"],
            "queue": data["queue"],
            "priority": data["priority"],
            "delay": data["delay"],
        }


class EnqueueForm(forms.Form):
    """A new job from the admin: a registered handler, its payload and the options of
    ``enqueue``; blank options take the handler's defaults, then the queue's."""

    name = forms.ChoiceField(label=_("Handler"))
    payload = JsonField(label=_("Payload"), required=False)
    queue = forms.ChoiceField(
        label=_("Queue"), required=False, help_text=_("Blank: the handler's queue.")
    )
    priority = forms.IntegerField(
        label=_("Priority"),
        required=False,
        min_value=MIN_PRIORITY,
        max_value=MAX_PRIORITY,
        help_text=format_lazy(
            _("{low} runs first, {high} last. Blank: the handler's default."),
            low=MIN_PRIORITY,
            high=MAX_PRIORITY,
        ),
    )
    delay = forms.FloatField(
        label=_("Delay (seconds)"),
        required=False,
        min_value=0,
        help_text=_("Blank or 0: as soon as a worker is free."),
    )
    attempts = forms.IntegerField(label=_("Attempts"), required=False, min_value=1, max_value=1000)
    backoff = JsonField(
        label=_("Backoff"),
        required=False,
        help_text=_('e.g. {"type": "exponential", "delay": 1000} (milliseconds).'),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = [(n, n) for n in handler_names()]
        queues = Queue.objects.order_by("name").values_list("name", flat=True)
        self.fields["queue"].choices = [("", "-")] + [(n, n) for n in queues]
        self.fields["backoff"].widget = forms.Textarea(
            attrs={"rows": 2, "cols": 80, "class": "jp-code", "spellcheck": "false"}
        )

    def enqueue_arguments(self) -> tuple[str, object, dict[str, Any]]:
        """``enqueue``'s name, payload and options (only those given)."""
        data = self.cleaned_data
        options = {
            key: data[key]
            for key in ("queue", "priority", "delay", "attempts")
            if data.get(key) not in (None, "")
        }
        if self.data.get("backoff", "").strip():
            options["backoff"] = data["backoff"]
        return data["name"], data["payload"], options
