from django.apps import AppConfig

from features.health import check_market_data
from mlengine.health import DEPENDENCY_CHECKS


class FeaturesConfig(AppConfig):
    name = "features"
    verbose_name = "Market data and features"

    def ready(self) -> None:
        DEPENDENCY_CHECKS["market_data"] = check_market_data
