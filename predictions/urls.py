from django.urls import path

from predictions.apis import (
    PredictApi,
    PredictBatchApi,
    PredictionDetailApi,
    PredictionRecentApi,
)

urlpatterns = [
    path("predict", PredictApi.as_view(), name="predict"),
    path("predict/batch", PredictBatchApi.as_view(), name="predict-batch"),
    path("predictions/recent", PredictionRecentApi.as_view(), name="prediction-recent"),
    path("predictions/<str:request_id>", PredictionDetailApi.as_view(), name="prediction-detail"),
]
