"""The admin console: dashboard, jobs, queues, workers and the audit log."""

from django.apps import apps
from django.contrib import admin

from queues.admin import jobs, queues  # noqa: F401  (registers the ModelAdmins)

# django-q2 only runs the platform's drains: its own task, result and schedule pages
# would show plumbing (and an idle scheduler), not jobs.
for model in apps.get_app_config("django_q").get_models():
    if admin.site.is_registered(model):
        admin.site.unregister(model)
