"""Broker down (issue 10, point 10): ``POST /models/train`` answers 503 ``broker_unavailable``
at once and leaves no run queued without a task id.

A real gunicorn with ``CELERY_BROKER_URL`` at a port where nothing listens, or at one that
accepts connections and never answers: a real kombu publish against each.
"""

from __future__ import annotations

import pytest
import requests
from rest_framework.authtoken.models import Token

from models_registry.models import TrainingRun
from tests.factories import make_user
from tests.faults.services import blackhole_port, closed_port


def post_train(base: str, token: str) -> requests.Response:
    # The bound of the test, not a timing: without the broker timeouts a publish to a
    # black-holed broker never returns.
    return requests.post(
        f"{base}/models/train",
        json={"symbols": ["SP500"], "model": "logistic_regression", "seed": 7},
        headers={"Authorization": f"Token {token}"},
        timeout=60,
    )


@pytest.mark.parametrize("broker", ["refused", "black-holed"])
def test_train_with_the_broker_down_is_a_503_and_no_orphan_run(gunicorn_factory, broker) -> None:
    token = Token.objects.create(user=make_user("trainer")).key
    with blackhole_port() as silent:
        port = closed_port() if broker == "refused" else silent
        base = gunicorn_factory(env={"CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"})
        response = post_train(base, token)

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "broker_unavailable"
    runs = list(TrainingRun.objects.values("id", "status", "task_id", "error", "finished_at"))
    assert len(runs) == 1
    run = runs[0]
    assert error["details"]["run"] == run["id"]
    assert run["status"] == "failed"
    assert run["finished_at"] is not None
    assert "broker unavailable" in run["error"]
    assert not TrainingRun.objects.filter(status="queued", task_id="").exists()
