from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from queues.dashboard import dashboard_data_view, dashboard_view
from queues.handler_metrics import handler_metrics_view
from queues.health import healthz_view
from queues.prometheus import metrics_view

api = [
    path("", include("queues.api.urls")),
    path("", include("scheduling.api.urls")),
    path("", include("devices.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # The dashboard lives beside the queues app's admin pages.
    path("admin/queues/dashboard/", admin.site.admin_view(dashboard_view), name="queues_dashboard"),
    path(
        "admin/queues/dashboard/data/",
        admin.site.admin_view(dashboard_data_view),
        name="queues_dashboard_data",
    ),
    path(
        "admin/queues/dashboard/handlers/",
        admin.site.admin_view(handler_metrics_view),
        name="queues_handler_metrics",
    ),
    # The console's own JavaScript strings (gettext() in queues/static), in the page's
    # language.
    path(
        "admin/jp-jsi18n/",
        JavaScriptCatalog.as_view(packages=["queues", "scheduling", "devices"]),
        name="jp_javascript_catalog",
    ),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the header's switch
    path("admin/", admin.site.urls),
    path("api/v1/", include(api)),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz_view, name="healthz"),
]
