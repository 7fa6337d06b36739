"""The admin site: its index opens with the work (the dashboard's summary), then the
apps in the order an operator needs them, the auth models last."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _

# Apps first to last; any other app comes after these, the accounts at the very end.
APP_ORDER = ["queues", "scheduling", "devices", "notifications"]
LAST = ["authtoken", "auth"]
# Within an app, the models an operator works with first.
MODEL_ORDER = {"queues": ["Job", "Queue", "Worker", "JobAttempt", "AuditLog"]}


class JobPlatformAdminSite(admin.AdminSite):
    site_header = _("jobplatform")
    site_title = _("jobplatform")
    index_title = _("Jobs, queues and schedules")
    index_template = "admin/jp_index.html"
    # No app list down the left of every page: the index and the breadcrumbs lead there,
    # and the job list needs the width (it fits at 1,280 px beside its filters).
    enable_nav_sidebar = False

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)

        def rank(app):
            label = app["app_label"]
            if label in LAST:
                return (2, LAST.index(label), "")
            if label in APP_ORDER:
                return (0, APP_ORDER.index(label), "")
            return (1, 0, str(app["name"]))

        apps.sort(key=rank)
        for app in apps:
            order = MODEL_ORDER.get(app["app_label"])
            if order:
                app["models"].sort(
                    key=lambda m: (
                        order.index(m["object_name"]) if m["object_name"] in order else len(order)
                    )
                )
        return apps

    def index(self, request, extra_context=None):
        # The dashboard's module reads models: imported when the page is asked for.
        from queues.dashboard import index_summary

        extra_context = {**(extra_context or {}), "summary": index_summary()}
        return super().index(request, extra_context)


class JobPlatformAdminConfig(AdminConfig):
    default_site = "jobplatform.admin.JobPlatformAdminSite"
