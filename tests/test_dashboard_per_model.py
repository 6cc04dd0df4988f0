"""The dashboard per model (issue 12): ``?model=NAME`` picks the model every panel reads; the
selector lists the registered models; an unknown or malformed name is a clear page, not a 500."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from models_registry.models import ModelVersion
from models_registry.services.activation import model_version_activate
from predictions.models import PredictionRecord
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    User.objects.create_user("ops", password="pw-ops", is_staff=True)
    client = Client()
    client.force_login(User.objects.get(username="ops"))
    return client


@pytest.fixture
def two_models() -> dict[str, ModelVersion]:
    champions = {}
    for name, symbol, latency in (("spx", "SP500", 2.0), ("ndx", "NASDAQ", 40.0)):
        version = make_version(model=make_model(name, symbols=[symbol]))
        model_version_activate(version=version.version, model=name, actor_name=f"setup {name}")
        now = timezone.now()
        PredictionRecord.objects.bulk_create(
            PredictionRecord(
                request_id=uuid.uuid4(),
                created_at=now - datetime.timedelta(minutes=i),
                symbol=symbol,
                model_version=version,
                features={},
                prediction=0.6,
                confidence=0.2,
                as_of=now,
                latency_ms=latency,
            )
            for i in range(5)
        )
        champions[name] = version
    return champions


def test_every_panel_reads_the_selected_model(staff_client: Client, two_models) -> None:
    response = staff_client.get("/dashboard/", {"model": "ndx"})
    assert response.status_code == 200
    context = response.context
    assert context["model"].name == "ndx"
    assert [c["name"] for c in context["models"] if c["selected"]] == ["ndx"]
    assert {c["name"] for c in context["models"]} == {"default", "spx", "ndx"}
    assert {row["symbol"] for row in context["predictions"]} == {"NASDAQ"}
    assert [row["actor"] for row in context["activations"]] == ["setup ndx"]
    assert context["active"]["active"]["version"] == "v1"
    facts = dict(context["latency"].facts)
    assert facts["p95"] == "40.0 ms"
    freshness = context["freshness"]["items"]
    assert [i["subject"] for i in freshness if i["component"] == "upstream candles"] == ["NASDAQ"]
    html = response.content.decode()
    assert '<option value="ndx" selected>ndx</option>' in html
    assert "Champion of ndx" in html

    spx = staff_client.get("/dashboard/", {"model": "spx"}).context
    assert {row["symbol"] for row in spx["predictions"]} == {"SP500"}
    assert dict(spx["latency"].facts)["p95"] == "2.0 ms"


def test_without_a_model_the_dashboard_shows_default(staff_client: Client, two_models) -> None:
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    assert response.context["model"].name == "default"
    assert response.context["predictions"] == []
    assert response.context["active"]["active"] is None


@pytest.mark.parametrize(
    ("name", "status", "text"),
    [("nope", 404, "Unknown model &#x27;nope&#x27;."), ("Bad Name", 400, "a model name is")],
)
def test_an_unknown_or_malformed_model_is_a_clear_page(
    staff_client: Client, two_models, name: str, status: int, text: str
) -> None:
    response = staff_client.get("/dashboard/", {"model": name})
    assert response.status_code == status
    html = response.content.decode()
    assert 'id="model-error"' in html and text in html
    assert '<option value="spx">spx</option>' in html  # the selector is still there
