"""Plain admin registration so queues, jobs and their history can be seen."""

from django.contrib import admin

from queues.models import Job, JobAttempt, JobLog, Queue, Worker


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "paused",
        "default_priority",
        "default_attempts",
        "concurrency",
        "lock_duration",
        "max_stalled",
    ]
    list_filter = ["paused"]
    search_fields = ["name", "description"]


class JobAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = JobAttempt
    extra = 0
    fields = ["number", "worker", "started_at", "finished_at", "duration_ms", "outcome", "error"]
    readonly_fields = fields


class JobLogInline(ReadOnlyMixin, admin.TabularInline):
    model = JobLog
    extra = 0
    fields = ["attempt", "created_at", "message"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "queue",
        "status",
        "priority",
        "attempts_made",
        "progress",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "queue", "name"]
    list_select_related = ["queue"]
    search_fields = ["=id", "name"]
    show_full_result_count = False
    date_hierarchy = None
    readonly_fields = [
        "id",
        "created_at",
        "started_at",
        "finished_at",
        "attempts_made",
        "attempts_base",
        "locked_until",
        "worker",
        "stalled_count",
        "result",
        "error",
    ]
    inlines = [JobAttemptInline, JobLogInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # The changelist never shows the big JSON columns.
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            qs = qs.defer("payload", "result", "backoff", "error")
        return qs


@admin.register(JobAttempt)
class JobAttemptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["job", "number", "outcome", "worker", "started_at", "duration_ms"]
    list_filter = ["outcome"]
    list_select_related = ["job"]
    show_full_result_count = False


@admin.register(Worker)
class WorkerAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "queues", "concurrency", "started_at", "last_heartbeat"]
