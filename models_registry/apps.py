from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from mlengine.health import EXTRA_CHECKS
        from models_registry.health import check_active_model

        EXTRA_CHECKS["active_model"] = check_active_model
