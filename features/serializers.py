"""The shape ``GET /features`` answers, for the OpenAPI schema, with its example."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers

FeaturesResponseSerializer = inline_serializer(
    "FeaturesResponse",
    {
        "symbol": serializers.CharField(),
        "lookback": serializers.IntegerField(),
        "as_of": serializers.DateTimeField(),
        "features": serializers.DictField(child=serializers.FloatField(allow_null=True)),
        "series": serializers.ListField(child=serializers.DictField(), required=False),
    },
)

FEATURES_EXAMPLE = {
    "symbol": "SP500",
    "lookback": 20,
    "as_of": "2018-12-31T00:00:00+00:00",
    "features": {
        "close": 2506.850098,
        "simple_return": 0.008492,
        "log_return": 0.008457,
        "moving_average": 2576.950513,
        "ma_gap": -0.027203,
        "rolling_volatility": 0.018498,
        "momentum": -0.084356,
        "range_pct": 0.010539,
        "volume_ratio": 0.78089,
    },
}
FEATURES_EXAMPLES = [OpenApiExample("SP500, window 20", value=FEATURES_EXAMPLE, response_only=True)]
