"""The walk-forward verdict end to end: trained for real, stored, shown on /models/{v}, the admin
version page and the dashboard, and used by PROMOTION_POLICY=enforce."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from models_registry.models import ModelVersion
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from tests.factories import SMALL_CONFIG, logged_in, make_version, staff_user, token_client
from tests.test_admin_pages import change_url, section

pytestmark = pytest.mark.django_db

WALK_FORWARD_CONFIG: dict[str, Any] = {
    **SMALL_CONFIG,
    "validation": {"method": "walk_forward", "folds": 4},
}


@pytest.fixture
def walked() -> ModelVersion:
    _, version = model_train(
        config=training_config_resolve(config_data=WALK_FORWARD_CONFIG), source="command"
    )
    return version


def test_the_version_stores_the_folds_and_its_verdict_is_beats_baseline(
    walked: ModelVersion,
) -> None:
    walk = walked.metrics["walk_forward"]
    assert len(walk["folds"]) == 4
    verdict = walk["vs_always_up"]
    assert walked.beats_baseline is verdict["significant"]
    assert verdict["significant"] == (verdict["log_loss_difference"]["interval"][1] < 0)
    assert walked.config["validation"] == {"method": "walk_forward", "folds": 4}
    assert walked.baseline["prediction"]["count"] == walk["pooled"]["model"]["rows"]


def test_models_detail_shows_the_walk_forward_summary(walked: ModelVersion) -> None:
    client = token_client("reader")
    body = client.get(f"/api/v1/models/{walked.label}").json()
    summary = body["walk_forward"]
    stored = walked.metrics["walk_forward"]["vs_always_up"]
    assert summary["method"] == "walk_forward" and summary["folds"] == 4
    assert summary["significant"] is body["beats_baseline"] is stored["significant"]
    assert summary["log_loss_difference"]["interval"] == stored["log_loss_difference"]["interval"]
    assert summary["accuracy_difference"]["estimate"] == stored["accuracy_difference"]["estimate"]
    assert "model minus always-up" in summary["sign"]


def test_models_detail_of_a_version_without_a_verdict_says_null() -> None:
    make_version()
    assert Client().get("/models/v1").json()["walk_forward"] is None


def test_version_page_shows_the_verdict_the_folds_and_the_calibration(
    walked: ModelVersion,
) -> None:
    client = logged_in(staff_user("ops", registry=True))
    response = client.get(change_url(walked))
    rows, text = section(response, "verdict")
    stored = walked.metrics["walk_forward"]["vs_always_up"]
    low, high = stored["log_loss_difference"]["interval"]
    assert f"[{low:+.4f}, {high:+.4f}]" in text
    assert ("Significant" if stored["significant"] else "Not significant") in text
    log_loss_row = next(row for row in rows if row and row[0].startswith("log loss"))
    assert log_loss_row[2] == f"[{low:.4f}, {high:.4f}]"
    fold_rows, _ = section(response, "folds")
    labels = [row[0] for row in fold_rows[1:]]
    assert labels[:4] == [
        f"fold {k + 1} (train {f['train_rows']} rows)"
        for k, f in enumerate(walked.metrics["walk_forward"]["folds"])
    ]
    assert labels[4] == "pooled out of fold"
    calibration, _ = section(response, "calibration")
    counts = [int(row[2]) for row in calibration[1:]]
    assert sum(counts) == walked.metrics["walk_forward"]["pooled"]["model"]["rows"]
    assert len(counts) == len(walked.metrics["calibration"])


def test_dashboard_card_shows_the_verdict_with_its_interval(walked: ModelVersion) -> None:
    model_version_activate(
        version=walked.version, actor=None, actor_name="test", force=True, reason="test"
    )
    User.objects.create_user("dash", password="pw-dash", is_staff=True)
    client = Client()
    client.force_login(User.objects.get(username="dash"))
    html = client.get("/dashboard/").content.decode()
    low, high = walked.metrics["walk_forward"]["vs_always_up"]["log_loss_difference"]["interval"]
    assert "vs always-up" in html
    assert f"[{low:+.4f}, {high:+.4f}]" in html


def test_enforce_refuses_a_version_whose_interval_does_not_exclude_zero(
    walked: ModelVersion, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    client = token_client("operator")
    response = client.post(f"/models/activate/{walked.label}", {}, format="json")
    if walked.beats_baseline:
        assert response.status_code == 200
        return
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    low, high = walked.metrics["walk_forward"]["vs_always_up"]["log_loss_difference"]["interval"]
    assert f"[{low:+.4f}, {high:+.4f}]" in message
    forced = client.post(
        f"/models/activate/{walked.label}", {"force": True, "reason": "paper trial"}, format="json"
    )
    assert forced.status_code == 200
