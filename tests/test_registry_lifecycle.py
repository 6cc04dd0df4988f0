"""Registry lifecycle over the API: list, detail, activate, roll back, history, permissions."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services.activation import model_version_activate
from tests.factories import active_labels, make_user, make_version, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_api() -> APIClient:
    return token_client("operator")


def test_models_list_is_paginated_newest_first() -> None:
    for _ in range(3):
        make_version()
    body = APIClient().get("/models", {"page_size": 2}).json()
    assert body["count"] == 3
    assert [item["version"] for item in body["results"]] == ["v3", "v2"]
    assert set(body["results"][0]) == {
        "version",
        "is_active",
        "status",
        "created_at",
        "metrics",
        "dataset",
    }
    assert body["next"]
    assert APIClient().get("/api/v1/models").json()["count"] == 3


@pytest.mark.parametrize(
    "path",
    ["/models/v1", "/models/1", "/model/v1", "/model/1", "/api/v1/models/V1", "/api/v1/model/1"],
)
def test_model_detail_accepts_v_prefix_and_legacy_path(path: str) -> None:
    make_version()
    body = APIClient().get(path).json()
    assert body["version"] == "v1"
    assert body["artifact"]["sha256"]


def test_model_detail_shows_the_baseline_statistics_without_the_samples(trained) -> None:
    stored = ModelVersion.objects.get(pk=trained.pk).baseline
    stored_feature = next(iter(stored["features"].values()))
    assert len(stored_feature["sample"]) > 100  # the registry keeps them for the drift check
    for path in ("/models/v1", "/registry/models/default/versions/v1"):
        response = APIClient().get(path)
        assert len(response.content) < 60_000, path  # not a megabyte of training values
        baseline = response.json()["baseline"]
        assert set(baseline["features"]) == set(stored["features"])
        for name, shown in [*baseline["features"].items(), ("prediction", baseline["prediction"])]:
            kept = stored["prediction"] if name == "prediction" else stored["features"][name]
            assert "sample" not in shown and shown["sample_size"] == len(kept["sample"])
            assert {key: value for key, value in kept.items() if key != "sample"} == {
                key: value for key, value in shown.items() if key != "sample_size"
            }


def test_model_detail_unknown_is_404_and_malformed_is_400() -> None:
    assert APIClient().get("/models/v99").json()["error"]["code"] == "unknown_model_version"
    assert APIClient().get("/models/v99").status_code == 404
    assert APIClient().get("/models/abc").status_code == 400


def test_activate_switches_the_active_version_and_writes_an_event(
    operator_api: APIClient,
) -> None:
    v1, v2 = make_version(), make_version()
    first = operator_api.post("/models/activate/v1", {"reason": "first"}, format="json")
    assert first.status_code == 200
    assert first.json() == {
        "active_version": "v1",
        "previous_version": None,
        "changed": True,
        "warning": None,
    }
    second = operator_api.post("/models/activate/2", {}, format="json")
    assert second.json()["active_version"] == "v2"
    assert second.json()["previous_version"] == "v1"
    assert active_labels() == ["v2"]
    events = list(ActivationEvent.objects.order_by("pk"))
    assert [(e.from_version_id, e.to_version_id, e.actor_name) for e in events] == [
        (None, v1.pk, "operator"),
        (v1.pk, v2.pk, "operator"),
    ]
    assert events[0].reason == "first"


def test_activating_the_active_version_is_a_noop(operator_api: APIClient) -> None:
    make_version()
    operator_api.post("/models/activate/v1", format="json")
    again = operator_api.post("/models/activate/v1", format="json")
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert ActivationEvent.objects.count() == 1


def test_activate_unknown_is_404_and_not_ready_is_409(operator_api: APIClient) -> None:
    make_version(status="failed")
    unknown = operator_api.post("/models/activate/v9", format="json")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_model_version"
    failed = operator_api.post("/models/activate/v1", format="json")
    assert failed.status_code == 409
    assert failed.json()["error"]["code"] == "version_not_ready"
    assert ActivationEvent.objects.count() == 0


def test_rollback_walks_back_through_activations(operator_api: APIClient) -> None:
    for _ in range(3):
        make_version()
    for label in ("v1", "v2", "v3"):
        operator_api.post(f"/models/activate/{label}", format="json")
    first = operator_api.post("/models/rollback", {"reason": "bad live accuracy"}, format="json")
    assert first.json()["active_version"] == "v2"
    assert first.json()["previous_version"] == "v3"
    assert operator_api.post("/models/rollback", format="json").json()["active_version"] == "v1"
    none_left = operator_api.post("/models/rollback", format="json")
    assert none_left.status_code == 409
    assert none_left.json()["error"]["code"] == "no_previous_version"
    assert active_labels() == ["v1"]
    last = ActivationEvent.objects.filter(action="rollback").order_by("pk").first()
    assert last.reason == "bad live accuracy"


def test_rollback_with_nothing_active_is_409(operator_api: APIClient) -> None:
    assert operator_api.post("/models/rollback", format="json").status_code == 409


def test_activations_list_newest_first(operator_api: APIClient) -> None:
    make_version(), make_version()
    operator_api.post("/models/activate/v1", format="json")
    operator_api.post("/models/activate/v2", format="json")
    results = APIClient().get("/models/activations").json()["results"]
    assert [(r["from_version"], r["to_version"]) for r in results] == [("v1", "v2"), (None, "v1")]


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/models/activate/v1"), ("post", "/models/rollback"), ("post", "/models/train")],
)
def test_writes_need_authentication_and_the_registry_permission(method: str, path: str) -> None:
    make_version()
    anonymous = getattr(APIClient(), method)(path, {}, format="json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    client = APIClient()
    token = Token.objects.create(user=make_user("viewer", registry=False))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    forbidden = getattr(client, method)(path, {}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"
    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_session_writes_need_csrf() -> None:
    make_version()
    user = make_user("admin-user", staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/models/activate/v1", {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_reads_can_require_auth(settings) -> None:
    settings.API_READ_REQUIRES_AUTH = True
    assert APIClient().get("/models").status_code == 401


def test_warn_policy_activates_with_a_warning(operator_api: APIClient, settings) -> None:
    settings.PROMOTION_POLICY = "warn"
    make_version(beats_baseline=False)
    body = operator_api.post("/models/activate/v1", format="json").json()
    assert body["active_version"] == "v1"
    assert "does not beat the always-up baseline" in body["warning"]
    assert ActivationEvent.objects.get().warning == body["warning"]


def test_enforce_policy_refuses_unless_forced_with_a_reason(
    operator_api: APIClient, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    make_version(beats_baseline=False)
    refused = operator_api.post("/models/activate/v1", format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "promotion_refused"
    no_reason = operator_api.post("/models/activate/v1", {"force": True}, format="json")
    assert no_reason.status_code == 409
    forced = operator_api.post(
        "/models/activate/v1", {"force": True, "reason": "known regime change"}, format="json"
    )
    assert forced.status_code == 200
    event = ActivationEvent.objects.get()
    assert event.forced is True
    assert event.reason == "known regime change"


def test_enforce_policy_lets_a_good_version_through(operator_api: APIClient, settings) -> None:
    settings.PROMOTION_POLICY = "enforce"
    make_version(beats_baseline=True)
    assert operator_api.post("/models/activate/v1", format="json").status_code == 200


def test_bad_body_is_a_400(operator_api: APIClient) -> None:
    make_version()
    response = operator_api.post("/models/activate/v1", {"force": "maybe"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"
    broken = operator_api.post("/models/activate/v1", "{not json", content_type="application/json")
    assert broken.status_code == 400


def test_tampered_artifact_is_refused_and_the_active_version_stays(
    operator_api: APIClient, settings
) -> None:
    make_version(), make_version()
    operator_api.post("/models/activate/v1", format="json")
    v2 = ModelVersion.objects.get(version=2)
    path = settings.ARTIFACTS_DIR / v2.artifact_name
    path.write_bytes(path.read_bytes() + b"tampered")
    response = operator_api.post("/models/activate/v2", format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "artifact_invalid"
    assert active_labels() == ["v1"]
    assert ActivationEvent.objects.count() == 1
    path.unlink()
    missing = operator_api.post("/models/activate/v2", format="json")
    assert missing.json()["error"]["code"] == "artifact_invalid"
    assert active_labels() == ["v1"]


def test_database_allows_only_one_active_version() -> None:
    make_version(is_active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version(is_active=True)
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_database_refuses_an_active_version_that_is_not_ready() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version(status="failed", is_active=True)


def test_activation_events_are_append_only() -> None:
    make_version()
    result = model_version_activate(version=1, actor_name="test")
    with pytest.raises(ValueError, match="append-only"):
        result.event.save()
    with pytest.raises(ValueError, match="append-only"):
        result.event.delete()


def test_event_lists_read_no_version_documents_and_a_fixed_number_of_queries() -> None:
    """Each event names two versions; a version's baseline is up to a megabyte. The history
    (three API routes, the dashboard's table) reads labels only, in the same queries for 4
    events as for 40."""
    big = {"features": {"close": {"sample": [0.5] * 5000}}}
    first, second = make_version(baseline=big), make_version(baseline=big)
    client = APIClient()
    paths = ("/models/activations", "/registry/models/default/activations", "/monitoring/history")
    counts: dict[str, list[int]] = {path: [] for path in paths}
    for rounds in (2, 20):
        while ActivationEvent.objects.count() < 2 * rounds:
            for version in (first, second):
                model_version_activate(version=version.version, actor_name="t")
        for path in paths:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(path).status_code == 200
            counts[path].append(len(queries))
            events_sql = [q["sql"] for q in queries if "activationevent" in q["sql"]]
            assert events_sql and not any('."baseline"' in sql for sql in events_sql), path
    for path, (few, many) in counts.items():
        assert few == many, (path, counts[path])
