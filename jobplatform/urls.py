from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from queues.dashboard import dashboard_data_view, dashboard_view

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # The dashboard lives beside the queues app's admin pages.
    path("admin/queues/dashboard/", admin.site.admin_view(dashboard_view), name="queues_dashboard"),
    path(
        "admin/queues/dashboard/data/",
        admin.site.admin_view(dashboard_data_view),
        name="queues_dashboard_data",
    ),
    path("admin/", admin.site.urls),
]
