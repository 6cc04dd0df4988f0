from django.urls import path

from monitoring.apis import DriftApi, FreshnessApi, HistoryApi, LatencyApi, ModelComparisonApi

urlpatterns = [
    path("monitoring/drift", DriftApi.as_view(), name="monitoring-drift"),
    path("monitoring/freshness", FreshnessApi.as_view(), name="monitoring-freshness"),
    path("monitoring/latency", LatencyApi.as_view(), name="monitoring-latency"),
    path("monitoring/history", HistoryApi.as_view(), name="monitoring-history"),
    # A registry route served here: the comparison reads the audit trail, above the registry.
    path(
        "registry/models/<str:name>/comparison",
        ModelComparisonApi.as_view(),
        name="registry-model-comparison",
    ),
]
