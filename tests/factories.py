"""Row factories for tests: real artifacts, real rows, no training unless asked."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.contrib.auth.models import Permission, User
from django.db.models import Max
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from models_registry.artifacts import artifact_write, serialize_model
from models_registry.models import ModelVersion, RegisteredModel

SMALL_CONFIG: dict[str, Any] = {
    "symbols": ["SP500"],
    "start": "2012-01-01",
    "end": "2015-12-31",
    "window": 10,
    "features": ["simple_return", "ma_gap", "rolling_volatility", "momentum"],
    "horizon": 1,
    "model": {"type": "logistic_regression", "params": {"C": 1.0, "max_iter": 500}},
    "validation": {"fraction": 0.2},
    "seed": 7,
}


def tiny_model() -> Pipeline:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 4))
    labels = (features[:, 0] > 0).astype(int)
    return Pipeline([("model", LogisticRegression())]).fit(features, labels)


def make_model(name: str, *, symbols: list[str] | None = None, **fields: Any) -> RegisteredModel:
    """A named model (``default`` is got, not created twice)."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=name, defaults={"symbols": symbols or [], **fields}
    )
    return model


def make_version(
    *,
    beats_baseline: bool = True,
    status: str = "ready",
    is_active: bool = False,
    model: RegisteredModel | str | None = None,
    **fields: Any,
) -> ModelVersion:
    """A registry row of ``model`` (``default`` when None) with a real, verifiable artifact."""
    if not isinstance(model, RegisteredModel):
        model = make_model(model or "default")
    artifact = artifact_write(data=serialize_model(tiny_model()))
    latest = model.versions.aggregate(latest=Max("version"))["latest"] or 0
    defaults: dict[str, Any] = {
        "model": model,
        "version": latest + 1,
        "status": status,
        "is_active": is_active,
        "beats_baseline": beats_baseline,
        "metrics": {
            "validation": {"accuracy": 0.56 if beats_baseline else 0.50, "roc_auc": 0.55},
            "baselines": {"always_up": {"accuracy": 0.53}, "majority_class": {"accuracy": 0.53}},
        },
        "feature_spec": {"window": 10, "horizon": 1, "features": SMALL_CONFIG["features"]},
        "artifact_name": artifact.name,
        "artifact_sha256": artifact.sha256,
        "artifact_size": artifact.size,
    }
    defaults.update(fields)
    return ModelVersion.objects.create(**defaults)


def make_user(username: str = "operator", *, registry: bool = True, staff: bool = False) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    if registry:
        user.user_permissions.add(Permission.objects.get(codename="manage_registry"))
    return User.objects.get(pk=user.pk)


REGISTRY_VIEW_PERMISSIONS = (
    "view_modelversion",
    "view_trainingrun",
    "view_activationevent",
    "view_registeredmodel",
)


def staff_user(username: str, *, registry: bool) -> User:
    """A staff user who can view the registry pages and, if ``registry``, manage versions."""
    user = make_user(username, registry=registry, staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="models_registry", codename__in=REGISTRY_VIEW_PERMISSIONS
        )
    )
    return User.objects.get(pk=user.pk)


def logged_in(user: User) -> Client:
    """A test client with ``user``'s session (``make_user``'s password)."""
    client = Client()
    # django-axes counts each attempt by the request's address, so the login needs a request.
    request = RequestFactory().post("/admin/login/")
    assert client.login(request=request, username=user.username, password="pw-" + user.username)
    return client


def token_client(username: str) -> APIClient:
    """An API client authenticated by a fresh token of a new user with the registry permission."""
    client = APIClient()
    token = Token.objects.create(user=make_user(username))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def active_labels() -> list[str]:
    return [version.label for version in ModelVersion.objects.filter(is_active=True)]
