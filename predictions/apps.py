from django.apps import AppConfig

from mlengine.health import EXTRA_CHECKS, READY_CHECKS


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        # predictions.health reaches the models: importable only once the app registry is ready.
        from predictions.health import (  # noqa: PLC0415 (models after setup)
            check_serving_model,
            check_serving_model_ready,
        )

        # Replaces the registry's database-only check (this app is loaded after it): the active
        # model is healthy only if this process can load it.
        EXTRA_CHECKS["active_model"] = check_serving_model
        READY_CHECKS["active_model"] = check_serving_model_ready
