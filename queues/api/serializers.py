"""Input and output shapes of the queues and jobs API."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import serializers

from queues.exceptions import EnqueueError
from queues.models import Job, JobAttempt, JobLog, JobStatus, Queue, Worker
from queues.priority import MAX_PRIORITY, MIN_PRIORITY
from queues.search import SEARCH_HELP, SearchError, search_condition
from queues.services.queues import CLEANABLE
from queues.webhooks import check_webhook_url


class AttemptOut(serializers.ModelSerializer):
    class Meta:
        model = JobAttempt
        fields = [
            "number",
            "worker",
            "started_at",
            "finished_at",
            "duration_ms",
            "outcome",
            "error",
        ]


class LogOut(serializers.ModelSerializer):
    class Meta:
        model = JobLog
        fields = ["attempt", "created_at", "message"]


class JobOut(serializers.ModelSerializer):
    queue = serializers.CharField(source="queue.name")

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "queue",
            "payload",
            "status",
            "priority",
            "progress",
            "attempts_made",
            "max_attempts",
            "backoff",
            "timeout",
            "run_at",
            "result",
            "error",
            "unique_key",
            "webhook_url",
            "created_at",
            "started_at",
            "finished_at",
        ]


class JobDetailOut(JobOut):
    # The attempt rows, and a completed job's completing attempt from its own row.
    attempts = AttemptOut(many=True, read_only=True, source="attempt_history")
    logs = serializers.SerializerMethodField()
    depends_on = serializers.SerializerMethodField()
    dependants = serializers.SerializerMethodField()

    class Meta(JobOut.Meta):
        fields = [*JobOut.Meta.fields, "attempts", "logs", "depends_on", "dependants"]

    def get_logs(self, job) -> list[dict]:
        return LogOut(job.logs.order_by("id")[:500], many=True).data

    def get_depends_on(self, job) -> list[str]:
        return [str(i) for i in job.dependency_links.values_list("parent_id", flat=True)]

    def get_dependants(self, job) -> list[str]:
        return [str(i) for i in job.dependant_links.values_list("job_id", flat=True)]


class BackoffIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=["fixed", "exponential"])
    delay = serializers.IntegerField(min_value=0)
    max_delay = serializers.IntegerField(min_value=0, required=False)


class JobCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    payload = serializers.JSONField(required=False, default=dict)
    queue = serializers.CharField(required=False, max_length=100)
    priority = serializers.IntegerField(
        required=False, min_value=MIN_PRIORITY, max_value=MAX_PRIORITY
    )
    delay_ms = serializers.IntegerField(required=False, min_value=0)
    run_at = serializers.DateTimeField(required=False)
    attempts = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    backoff = BackoffIn(required=False)
    timeout_ms = serializers.IntegerField(required=False, min_value=1)
    depends_on = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=1000
    )
    dependencies_mode = serializers.ChoiceField(choices=["required", "optional"], required=False)
    unique_key = serializers.CharField(required=False, max_length=200)
    webhook_url = serializers.URLField(required=False, max_length=500)

    def validate_webhook_url(self, value: str) -> str:

        try:
            check_webhook_url(value)
        except EnqueueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate(self, data):
        if "delay_ms" in data and "run_at" in data:
            raise serializers.ValidationError(
                {"delay_ms": [_("give either delay_ms or run_at, not both")]}
            )
        return data

    @staticmethod
    def enqueue_options(validated: dict) -> dict:
        """The ``enqueue`` keyword options for validated input."""
        data = dict(validated)
        options = {
            k: data[k]
            for k in (
                "queue",
                "priority",
                "run_at",
                "attempts",
                "backoff",
                "unique_key",
                "webhook_url",
                "dependencies_mode",
            )
            if k in data
        }
        if "delay_ms" in data:
            options["delay"] = data["delay_ms"] / 1000
        if "timeout_ms" in data:
            options["timeout"] = data["timeout_ms"] / 1000
        if data.get("depends_on"):
            options["depends_on"] = data["depends_on"]
        if "backoff" in options:
            options["backoff"] = dict(options["backoff"])
        return options


class BulkCreateIn(serializers.Serializer):
    jobs = JobCreateIn(many=True, allow_empty=False, max_length=1000)


class JobFilterIn(serializers.Serializer):
    queue = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    name = serializers.CharField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    q = serializers.CharField(required=False, help_text=SEARCH_HELP)

    def validate_q(self, value: str) -> str:
        # The admin's search box reads it too: a malformed term is a 400 naming the part.
        try:
            search_condition(value)
        except SearchError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class CountOut(serializers.Serializer):
    count = serializers.IntegerField()


# A queue's defaults, limits and retention: shown by QueueOut, changed by QueuePatchIn.
QUEUE_SETTINGS = [
    "default_priority",
    "default_attempts",
    "default_backoff",
    "default_timeout",
    "rate_limit_max",
    "rate_limit_duration_ms",
    "concurrency",
    "lock_duration",
    "max_stalled",
    "keep_completed_count",
    "keep_completed_age",
    "keep_failed_age",
]


class QueueOut(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    latency_s = serializers.SerializerMethodField()

    class Meta:
        model = Queue
        fields = ["name", "description", "paused", "counts", "latency_s", *QUEUE_SETTINGS]

    def get_counts(self, queue) -> dict[str, int]:
        return queue.snapshot_counts()

    def get_latency_s(self, queue) -> float:
        return round(queue.latency_seconds(self.context["now"]), 1)


class QueuePatchIn(serializers.ModelSerializer):
    default_backoff = BackoffIn(required=False)

    class Meta:
        model = Queue
        fields = ["description", *QUEUE_SETTINGS]
        extra_kwargs = {
            "default_priority": {"min_value": MIN_PRIORITY, "max_value": MAX_PRIORITY},
            "default_attempts": {"min_value": 1, "max_value": 1000},
            "default_timeout": {"min_value": 0.001},
            "lock_duration": {"min_value": 1},
        }

    def validate(self, data):
        rate = {
            **{
                "rate_limit_max": self.instance.rate_limit_max,
                "rate_limit_duration_ms": self.instance.rate_limit_duration_ms,
            },
            **data,
        }
        if bool(rate["rate_limit_max"]) != bool(rate["rate_limit_duration_ms"]):
            raise serializers.ValidationError(
                {"rate_limit_max": [_("set rate_limit_max and rate_limit_duration_ms together")]}
            )
        if "default_backoff" in data:
            data["default_backoff"] = dict(data["default_backoff"])
        return data


class CleanIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(CLEANABLE))
    grace_ms = serializers.IntegerField(min_value=0, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=100_000, default=1000)


class EmptyIn(serializers.Serializer):
    include_delayed = serializers.BooleanField(default=False)


class WorkerOut(serializers.ModelSerializer):
    stale = serializers.BooleanField()

    class Meta:
        model = Worker
        fields = [
            "id",
            "hostname",
            "pid",
            "queues",
            "concurrency",
            "started_at",
            "last_heartbeat",
            "jobs_done",
            "stale",
        ]
