"""One representation of a prediction: the export's line is unchanged by it, byte for byte."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from rest_framework import serializers

from models_registry.models import ModelVersion, RegisteredModel
from predictions.audit.chain import GENESIS_HASH, chain_lines
from predictions.models import PredictionRecord
from predictions.serializers import PredictionRecordSerializer, PredictionSerializer, audit_fields

ROW = {
    "id": 7,
    "request_id": uuid.UUID("5a801341-6492-4cf5-a4d9-030052454008"),
    # Not UTC on purpose: the line is written in UTC whatever the connection's time zone.
    "created_at": datetime(2026, 11, 26, 11, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Paris")),
    "event_time": datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC),
    "is_replay": False,
    "symbol": "SP500",
    "model_version__version": 3,
    "model_version__model__name": "default",
    "features": {
        "volume_ratio": 0.78,
        "close": 2506.85,
        "momentum": None,
        "simple_return": 0.0085,
        "extra": 1.5,
    },
    "prediction": 0.53,
    "confidence": 0.06,
    "as_of": datetime(2018, 12, 31, tzinfo=UTC),
    "horizon": 1,
    "latency_ms": 3.1,
    "outcome": 1,
    # As the row reads since shadow scoring: a champion's row (the default of the rows before it).
    "role": "champion",
    "champion_request_id": None,
}
# Written by the exporter of issue 10 (predictions.selectors.prediction_record_as_dict) for ROW.
LINE_BEFORE_THE_SERIALIZER = (
    '{"as_of":"2018-12-31T00:00:00+00:00","confidence":0.06,'
    '"event_time":"2026-11-26T10:00:00.123456+00:00","features":{"close":2506.85,"extra":1.5,'
    '"momentum":null,"simple_return":0.0085,"volume_ratio":0.78},'
    '"hash":"2fd542a9dae53d810e9065ff0fb518ab686e90766bceafb01beba455dada41ad","horizon":1,'
    '"id":7,"latency_ms":3.1,"model_version":"v3","prediction":0.53,'
    '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    '"replay":false,"request_id":"5a801341-6492-4cf5-a4d9-030052454008","symbol":"SP500",'
    '"timestamp":"2026-11-26T10:00:00.123456+00:00"}\n'
)


def test_the_export_line_is_byte_for_byte_the_one_written_before() -> None:
    line, _ = next(chain_lines(GENESIS_HASH, [audit_fields(ROW)]))
    assert line.decode() == LINE_BEFORE_THE_SERIALIZER


def test_the_predict_fields_are_a_subset_of_the_record_and_agree_with_it() -> None:
    prediction = PredictionSerializer(ROW).data
    record = PredictionRecordSerializer(ROW).data
    assert set(prediction) < set(record)
    assert {name: record[name] for name in prediction} == prediction
    assert list(prediction["features"])[:2] == ["close", "simple_return"]  # canonical order
    assert record["outcome"] == 1 and "outcome" not in audit_fields(ROW)


def test_a_shadow_row_adds_its_role_and_champion_to_the_line() -> None:
    champion = str(ROW["request_id"])
    shadow = {**ROW, "role": "challenger", "champion_request_id": ROW["request_id"]}
    fields = audit_fields(shadow)
    assert fields["role"] == "challenger" and fields["champion_request_id"] == champion
    assert {k: v for k, v in fields.items() if k not in ("role", "champion_request_id")} == (
        audit_fields(ROW)
    )


def _instance() -> PredictionRecord:
    """ROW as the model instance the prediction service hands the serializer (unsaved, its
    version and model attached)."""
    version = ModelVersion(version=3, model=RegisteredModel(name="default"))
    fields = {
        name: value
        for name, value in ROW.items()
        if name not in {"model_version__version", "model_version__model__name"}
    }
    return PredictionRecord(**fields, model_version=version)


@pytest.mark.parametrize("serializer_class", [PredictionSerializer, PredictionRecordSerializer])
@pytest.mark.parametrize("instance", [ROW, _instance()], ids=["values-row", "model-instance"])
def test_the_fast_representation_is_drfs_own(serializer_class: type, instance: object) -> None:
    """The serializers read plain fields with attrgetter / itemgetter: the same answer as DRF's
    own ``Serializer.to_representation`` with its generic ``get_attribute``."""
    serializer = serializer_class()
    drf = serializers.Serializer.to_representation(serializer, instance)
    assert serializer.to_representation(instance) == drf
    assert list(serializer.to_representation(instance)) == list(drf)
