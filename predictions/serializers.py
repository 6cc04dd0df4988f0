"""The one representation of a prediction.

``PredictionSerializer`` is what ``/predict`` answers (and each item of ``/predict/batch``);
``PredictionRecordSerializer`` is the same prediction as the audit trail keeps it: those fields
plus the ones fixed at commit time that a client of ``/predict`` does not need (``id``,
``event_time``, ``replay``, ``horizon``) and the realised ``outcome``, filled in later.
``/predictions/{request_id}`` and ``/predictions/recent`` answer the record; the JSONL export
writes and hashes the record without ``outcome`` (``audit_fields``): a hash over a value that
changes after the commit would flag every back-fill as tampering.

Both read a ``PredictionRecord`` or a ``.values(*RECORD_FIELDS)`` row of one
(``predictions.selectors``). The OpenAPI schema is built from these classes, and the examples
below are the ones it shows.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from features.engineering import FEATURE_NAMES
from mlengine.schema import SYMBOL_PATTERN, error_response
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.serializers import ModelNameField as RegistryModelNameField

CONFIDENCE_DEFINITION = (
    "`prediction` is the model's probability that the close `horizon` candles after `as_of` is "
    "above the close at `as_of`. `confidence` is how far that probability is from a coin flip, "
    "scaled to [0, 1]: `|prediction - 0.5| * 2` (0 = no opinion, 1 = certain)."
)


class UtcDateTimeField(serializers.DateTimeField):
    """ISO 8601 in UTC with a ``+00:00`` offset, whatever the connection's time zone (the audit
    export hashes this text; DRF's own field would write ``Z`` and the current time zone)."""

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat()


class FeaturesField(serializers.DictField):
    """The feature values in the canonical order of ``FEATURE_NAMES`` (jsonb on PostgreSQL does
    not keep key order), then any others; ``null`` where a value is undefined."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.FloatField(allow_null=True), **kwargs)

    def to_representation(self, value: Mapping[str, float | None]) -> dict[str, float | None]:
        known = {name: value[name] for name in FEATURE_NAMES if name in value}
        return {**known, **{key: item for key, item in value.items() if key not in known}}


class ModelVersionLabelField(serializers.CharField):
    """The version's label (``v3``) from the row's version number: ``model_version__version`` of
    a ``.values()`` row, or ``model_version.version`` of an instance (no query when the version
    object is already attached, as the prediction service does)."""

    def get_attribute(self, instance: Any) -> int:
        if isinstance(instance, Mapping):
            return instance["model_version__version"]
        return instance.model_version.version

    def to_representation(self, value: int) -> str:
        return f"v{value}"


class ModelNameField(serializers.CharField):
    """The name of the version's model: ``model_version__model__name`` of a ``.values()`` row,
    or ``model_version.model.name`` of an instance (no query when the version object and its
    model are attached, as the prediction service does)."""

    def get_attribute(self, instance: Any) -> str:
        if isinstance(instance, Mapping):
            return instance["model_version__model__name"]
        return instance.model_version.model.name


class _FastSerializer(serializers.Serializer):
    """An output serializer that builds its fields once per class, not once per instance.

    DRF deep-copies every declared field for each serializer instance, which costs more than
    serializing a prediction (a third of a millisecond per ``/predict``). These fields hold no
    per-request state (no context, no relations), so one bound set serves every instance.

    A field that reads one attribute (or key, for a ``.values()`` row) the way ``Field`` does
    reads it with ``operator.attrgetter`` / ``itemgetter``: DRF's generic ``get_attribute``
    (dotted sources, callables, error messages) was four tenths of the time of a row. The
    attributes read are model columns, never methods to call.
    """

    @classmethod
    def _readers(cls, *, mapping: bool) -> list[tuple[str, Callable[[Any], Any], Callable]]:
        """(name, read, represent) per output field, for model instances or mappings."""
        key = "_built_mapping_readers" if mapping else "_built_readers"
        readers = cls.__dict__.get(key)
        if readers is None:
            readers = []
            for field in cls().fields.values():
                if field.write_only:
                    continue
                read = field.get_attribute
                plain = type(field).get_attribute is serializers.Field.get_attribute
                if plain and len(field.source_attrs) == 1:
                    getter = operator.itemgetter if mapping else operator.attrgetter
                    read = getter(field.source_attrs[0])
                readers.append((field.field_name, read, field.to_representation))
            setattr(cls, key, readers)
        return readers

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, read, represent in self._readers(mapping=isinstance(instance, Mapping)):
            value = read(instance)
            out[name] = None if value is None else represent(value)
        return out


class PredictionSerializer(_FastSerializer):
    """A prediction as ``/predict`` answers it."""

    symbol = serializers.CharField()
    prediction = serializers.FloatField(help_text="P(close `horizon` candles ahead > latest close)")
    confidence = serializers.FloatField(help_text="|prediction - 0.5| * 2, in [0, 1]")
    model = ModelNameField(help_text="The named model whose version answered.")
    model_version = ModelVersionLabelField()
    features = FeaturesField()
    as_of = UtcDateTimeField(help_text="Time of the newest candle the features used.")
    timestamp = UtcDateTimeField(source="created_at", help_text="When the row was committed.")
    request_id = serializers.UUIDField()
    latency_ms = serializers.FloatField()
    role = serializers.ChoiceField(
        choices=["champion", "challenger"],
        help_text="`champion`: the answer the client got; `challenger`: a version scored in "
        "shadow on the same request (never returned by /predict).",
    )


class PredictionRecordSerializer(PredictionSerializer):
    """A prediction as the audit trail keeps it: ``PredictionSerializer``'s fields and the rest
    of the row (``/predictions/{request_id}``, ``/predictions/recent``, the JSONL export)."""

    id = serializers.IntegerField(help_text="The row's id: the export's order.")
    event_time = UtcDateTimeField(help_text="The time the prediction counts for in monitoring.")
    replay = serializers.BooleanField(source="is_replay")
    horizon = serializers.IntegerField()
    outcome = serializers.IntegerField(
        allow_null=True, help_text="Realised label (1 up, 0 not), filled in later; null until then."
    )
    champion_request_id = serializers.UUIDField(
        allow_null=True,
        help_text="A challenger's row: the request_id of the champion's row it was scored beside.",
    )


class SymbolField(serializers.RegexField):
    """A symbol as ``/predict`` takes it (1-32 ASCII letters, digits, '.', '-' or '_'), given
    as a JSON string: DRF's own field would read ``0`` as ``"0"``."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SYMBOL_PATTERN, max_length=32, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


# Read when the schema is built, like every documented range; the check reads the setting on
# each request.
@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "pattern": SYMBOL_PATTERN, "maxLength": 32},
        "minItems": 1,
        "maxItems": settings.PREDICT_BATCH_LIMIT,
        "uniqueItems": True,
    }
)
class SymbolListField(serializers.ListField):
    """1 to ``PREDICT_BATCH_LIMIT`` distinct symbols. (``sp500`` after ``SP500`` is the same
    symbol in other letters, which JSON Schema's ``uniqueItems`` cannot say: the batch answers
    it with a ``duplicate_symbol`` error entry instead of scoring it twice.)

    A list whose every item is a string that ``SymbolField`` would return unchanged (the
    pattern matched as a whole: no whitespace to trim, nothing to refuse) is taken as it is;
    any other goes through ``SymbolField`` item by item, for its errors. That field's chain of
    validators took 2 ms of a 500-symbol batch."""

    _plain_symbol = re.compile(SYMBOL_PATTERN.removeprefix("^").removesuffix("$"))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=SymbolField(), allow_empty=False, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        plain = self._plain_symbol.fullmatch
        if type(data) is list and data and all(type(s) is str and plain(s) for s in data):
            symbols = list(data)
        else:
            symbols = super().to_internal_value(data)
        limit = settings.PREDICT_BATCH_LIMIT
        if len(symbols) > limit:
            raise serializers.ValidationError(f"at most {limit} symbols per request")
        repeated = sorted(symbol for symbol, count in Counter(symbols).items() if count > 1)
        if repeated:
            raise serializers.ValidationError(f"duplicate symbols: {', '.join(repeated)}")
        return symbols


class PredictionBatchRequestSerializer(serializers.Serializer):
    """``POST /predict/batch``."""

    symbols = SymbolListField()
    model = RegistryModelNameField(
        required=False, help_text="The model to serve every symbol with (default: routed)."
    )


class BatchErrorSerializer(serializers.Serializer):
    """The error shape's inner object, for one symbol of a batch."""

    symbol = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class PredictionBatchSerializer(serializers.Serializer):
    predictions = PredictionSerializer(many=True)
    errors = BatchErrorSerializer(many=True)


# Filled in after the commit: not part of what the export hashes.
MUTABLE_FIELDS = frozenset({"outcome"})
_RECORD = PredictionRecordSerializer()


def audit_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a ``.values(*RECORD_FIELDS)`` row as the JSONL export writes and hashes it:
    every field fixed at commit time (the record without ``MUTABLE_FIELDS``).

    A row of the model ``default`` is written without ``model``, and a champion's row without
    ``role`` and ``champion_request_id``, exactly as before named models and shadow scoring
    existed: lines exported then still verify against their rows now."""
    record = _RECORD.to_representation(row)
    for name in MUTABLE_FIELDS:
        del record[name]
    if record.get("model") == DEFAULT_MODEL_NAME:
        del record["model"]
    if record.get("role") == "champion":
        del record["role"]
    if record.get("champion_request_id") is None:
        del record["champion_request_id"]
    return record


FEATURES_EXAMPLE = {
    "close": 2506.85,
    "simple_return": 0.0085,
    "moving_average": 2576.95,
    "rolling_volatility": 0.0185,
    "log_return": 0.0085,
    "ma_gap": -0.0272,
    "momentum": -0.0844,
    "range_pct": 0.0105,
    "volume_ratio": 0.7809,
}
PREDICTION_EXAMPLE = {
    "symbol": "SP500",
    "prediction": 0.53,
    "confidence": 0.06,
    "model": "default",
    "model_version": "v2",
    "features": FEATURES_EXAMPLE,
    "as_of": "2018-12-31T00:00:00+00:00",
    "timestamp": "2026-11-26T10:00:00.123456+00:00",
    "request_id": "5a801341-6492-4cf5-a4d9-030052454008",
    "latency_ms": 3.1,
    "role": "champion",
}
RECORD_EXAMPLE = {
    **PREDICTION_EXAMPLE,
    "id": 41,
    "event_time": "2026-11-26T10:00:00.123456+00:00",
    "replay": False,
    "horizon": 1,
    "outcome": None,
    "champion_request_id": None,
}
BATCH_REQUEST_EXAMPLE = {"symbols": ["SP500", "NASDAQ", "XYZ"]}
BATCH_EXAMPLE = {
    "predictions": [PREDICTION_EXAMPLE],
    "errors": [
        {
            "symbol": "XYZ",
            "code": "unknown_symbol",
            "message": "Unknown symbol 'XYZ'.",
            "details": {"symbol": "XYZ"},
        }
    ],
}


# The documented answers, each with its example, as the views' schemas use them.
PREDICTION_RESPONSE = OpenApiResponse(
    PredictionSerializer, examples=[OpenApiExample("prediction", value=PREDICTION_EXAMPLE)]
)
RECORD_RESPONSE = OpenApiResponse(
    PredictionRecordSerializer, examples=[OpenApiExample("a record", value=RECORD_EXAMPLE)]
)
BATCH_RESPONSE = OpenApiResponse(
    PredictionBatchSerializer, examples=[OpenApiExample("partly scored", value=BATCH_EXAMPLE)]
)
BATCH_REQUEST_EXAMPLES = [
    OpenApiExample("three symbols", value=BATCH_REQUEST_EXAMPLE, request_only=True)
]
PREDICT_BAD_REQUEST = error_response(
    "Malformed parameter, or a symbol several models serve (choose one with model=NAME)",
    "invalid_parameter",
    "symbol must be 1-32 letters, digits, '.', '-' or '_'",
    (
        "ambiguous_model",
        "FX1 is served by the models fx-daily, fx-hourly; choose one with model=NAME.",
    ),
)
PREDICT_NOT_FOUND = error_response(
    "Unknown symbol or unknown model",
    "unknown_symbol",
    "Unknown symbol 'XYZ'.",
    ("unknown_model", "Unknown model 'fx-hourly'."),
)
