from django.apps import AppConfig

from mlengine.health import EXTRA_CHECKS


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # The check reads ModelVersion rows: models can be imported only once the app registry
        # is ready, which is what ready() is for (Django raises AppRegistryNotReady before).
        from models_registry.health import check_active_model  # noqa: PLC0415 (models after setup)

        EXTRA_CHECKS["active_model"] = check_active_model
        # Connects the receiver that gives every new model its (disabled) retraining entry.
        from models_registry import signals  # noqa: F401, PLC0415 (models after setup)
