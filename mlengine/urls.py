"""URL configuration. Every API endpoint answers at its seed path and again under ``/api/v1/``.

The apps' patterns are listed here, not included: a request walks every ``include`` level on
its way to its view (a resolver match per level), and ``/predict``, the hot path, is tried
first.
"""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from features.apis import FeaturesApi
from mlengine.api import json_error_view, safe_methods_only
from mlengine.apis import HealthApi, HealthLiveApi, HealthReadyApi
from models_registry import urls as models_registry_urls
from monitoring import urls as monitoring_urls
from monitoring.dashboard.views import dashboard_view
from monitoring.metrics import metrics_view
from predictions import urls as predictions_urls

api_patterns = [
    *predictions_urls.urlpatterns,
    path("health", HealthApi.as_view(), name="health"),
    path("health/live", HealthLiveApi.as_view(), name="health-live"),
    path("health/ready", HealthReadyApi.as_view(), name="health-ready"),
    path("features", FeaturesApi.as_view(), name="features"),
    *models_registry_urls.urlpatterns,
    *monitoring_urls.urlpatterns,
]

urlpatterns = [
    *api_patterns,
    # The non-API views answer other methods with a JSON 405, not an HTML CSRF or 405 page.
    path("metrics", safe_methods_only(metrics_view), name="metrics"),
    path("dashboard/", dashboard_view, name="dashboard"),
    path("api/v1/", include((api_patterns, "v1"))),
    path("api/schema/", safe_methods_only(SpectacularAPIView.as_view()), name="schema"),
    path(
        "api/docs/",
        safe_methods_only(SpectacularSwaggerView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    path("admin/", admin.site.urls),
]

handler400 = json_error_view(400, "bad_request", "Bad request.")
handler403 = json_error_view(403, "permission_denied", "You do not have permission to do this.")
handler404 = json_error_view(404, "not_found", "No such endpoint.")
handler500 = json_error_view(500, "internal_error", "An unexpected error occurred.")
