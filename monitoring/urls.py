from django.urls import path

from monitoring.apis import DriftApi, FreshnessApi, HistoryApi, LatencyApi

urlpatterns = [
    path("monitoring/drift", DriftApi.as_view(), name="monitoring-drift"),
    path("monitoring/freshness", FreshnessApi.as_view(), name="monitoring-freshness"),
    path("monitoring/latency", LatencyApi.as_view(), name="monitoring-latency"),
    path("monitoring/history", HistoryApi.as_view(), name="monitoring-history"),
]
