from django.urls import path

from models_registry.apis import (
    ActivationListApi,
    LegacyModelDetailApi,
    ModelActivateApi,
    ModelDetailApi,
    ModelListApi,
    ModelRollbackApi,
    ModelTrainApi,
    TrainingRunDetailApi,
)

urlpatterns = [
    path("models", ModelListApi.as_view(), name="model-list"),
    path("models/activations", ActivationListApi.as_view(), name="activation-list"),
    path("models/rollback", ModelRollbackApi.as_view(), name="model-rollback"),
    path("models/train", ModelTrainApi.as_view(), name="model-train"),
    path("models/activate/<str:version>", ModelActivateApi.as_view(), name="model-activate"),
    path("models/<str:version>", ModelDetailApi.as_view(), name="model-detail"),
    path("model/<str:version>", LegacyModelDetailApi.as_view(), name="model-detail-legacy"),
    path("training-runs/<str:run_id>", TrainingRunDetailApi.as_view(), name="training-run-detail"),
]
