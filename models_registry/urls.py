from django.urls import path

from models_registry.apis import (
    ActivationListApi,
    LegacyModelDetailApi,
    ModelActivateApi,
    ModelDetailApi,
    ModelListApi,
    ModelRollbackApi,
    ModelTrainApi,
    RegisteredModelActivateApi,
    RegisteredModelActivationListApi,
    RegisteredModelChallengerApi,
    RegisteredModelDetailApi,
    RegisteredModelListApi,
    RegisteredModelRollbackApi,
    RegisteredModelVersionDetailApi,
    RegisteredModelVersionListApi,
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
    path("registry/models", RegisteredModelListApi.as_view(), name="registry-model-list"),
    path(
        "registry/models/<str:name>",
        RegisteredModelDetailApi.as_view(),
        name="registry-model-detail",
    ),
    path(
        "registry/models/<str:name>/versions",
        RegisteredModelVersionListApi.as_view(),
        name="registry-model-versions",
    ),
    path(
        "registry/models/<str:name>/versions/<str:version>",
        RegisteredModelVersionDetailApi.as_view(),
        name="registry-model-version-detail",
    ),
    path(
        "registry/models/<str:name>/activate/<str:version>",
        RegisteredModelActivateApi.as_view(),
        name="registry-model-activate",
    ),
    path(
        "registry/models/<str:name>/rollback",
        RegisteredModelRollbackApi.as_view(),
        name="registry-model-rollback",
    ),
    path(
        "registry/models/<str:name>/challengers/<str:version>",
        RegisteredModelChallengerApi.as_view(),
        name="registry-model-challenger",
    ),
    path(
        "registry/models/<str:name>/activations",
        RegisteredModelActivationListApi.as_view(),
        name="registry-model-activations",
    ),
]
