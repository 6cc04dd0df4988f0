from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # The comparison reads PredictionRecord rows: importable only once the app registry is
        # ready. It fills the registry's promotion-evidence slot (models_registry.promotion):
        # the registry asks for a challenger's comparison without importing this app above it.
        from monitoring.services.comparison import register  # noqa: PLC0415 (models after setup)

        register()
