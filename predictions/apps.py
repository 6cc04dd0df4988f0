from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Predictions"

    def ready(self) -> None:
        from mlengine.health import EXTRA_CHECKS, READY_CHECKS
        from predictions.health import check_serving_model, check_serving_model_ready

        # Replaces the registry's database-only check (this app is loaded after it): the active
        # model is healthy only if this process can load it.
        EXTRA_CHECKS["active_model"] = check_serving_model
        READY_CHECKS["active_model"] = check_serving_model_ready
