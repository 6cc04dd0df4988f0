"""The admin per model (issue 12): the models list, a model's page with its versions, and the
lifecycle actions (activate, roll back, add and remove a challenger) within one model, each
through the confirmation page with a reason."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from models_registry.models import ActivationEvent, ModelVersion, RegisteredModel
from models_registry.selectors import challengers_of, champion_of
from models_registry.services.activation import model_version_activate
from monitoring.models import DriftSnapshot
from tests.factories import make_model, make_version

pytestmark = pytest.mark.django_db

MODELS = "/admin/models_registry/registeredmodel/"
VERSIONS = "/admin/models_registry/modelversion/"
CONFIRM_TEMPLATE = "admin/models_registry/modelversion/confirm_action.html"


@pytest.fixture
def two_models() -> dict[str, list[ModelVersion]]:
    """``spx``: v1 then v2 activated (v2 champion), v3 ready; ``ndx``: v1 champion. Every
    activation through the service, so each model has its history."""
    spx, ndx = make_model("spx", symbols=["SP500"]), make_model("ndx", symbols=["NASDAQ"])
    versions = {
        "spx": [make_version(model=spx) for _ in range(3)],
        "ndx": [make_version(model=ndx)],
    }
    for name, number in (("spx", 1), ("spx", 2), ("ndx", 1)):
        model_version_activate(version=number, model=name, actor_name="setup")
    return versions


def confirm(client: Client, page: HttpResponse, reason: str) -> HttpResponse:
    """Submit the confirmation page as the browser does: to its own URL, with its ``next``."""
    assert page.status_code == 200
    assert page.templates[0].name == CONFIRM_TEMPLATE
    url = page.request["PATH_INFO"]
    if page.request.get("QUERY_STRING"):
        url += "?" + page.request["QUERY_STRING"]
    return client.post(url, {"reason": reason, "next": page.context["back"]}, follow=True)


def messages_of(response: HttpResponse) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_models_list_shows_champion_challengers_symbols_and_last_drift(
    operator_client: Client, two_models
) -> None:
    spx = RegisteredModel.objects.get(name="spx")
    ModelVersion.objects.filter(pk=two_models["spx"][2].pk).update(is_challenger=True)
    DriftSnapshot.objects.create(
        check_id=uuid.uuid4(),
        model=spx,
        model_version=two_models["spx"][1],
        kind="model",
        feature="model",
        status="drift",
    )
    response = operator_client.get(MODELS)
    assert response.status_code == 200
    html = response.content.decode()
    rows = {row.name: row for row in response.context["cl"].result_list}
    assert set(rows) == {"default", "spx", "ndx"}
    admin = response.context["cl"].model_admin
    assert admin.champion(rows["spx"]) == "v2" and admin.challengers(rows["spx"]) == "v3"
    assert admin.champion(rows["ndx"]) == "v1" and admin.challengers(rows["ndx"]) == "—"
    assert admin.symbols_display(rows["ndx"]) == "NASDAQ"
    assert admin.drift_status(rows["spx"]) == "drift" and admin.drift_status(rows["ndx"]) == "—"
    assert f"?model__id__exact={spx.pk}" in html and "/dashboard/?model=spx" in html


def test_a_models_page_lists_its_versions_only_with_their_buttons(
    operator_client: Client, two_models
) -> None:
    spx = RegisteredModel.objects.get(name="spx")
    page = operator_client.get(f"{MODELS}{spx.pk}/change/")
    assert page.status_code == 200
    rows = page.context["version_rows"]
    assert [(r["label"], r["role"]) for r in rows] == [("v3", ""), ("v2", "champion"), ("v1", "")]
    v3 = dict((label, url) for label, url, _ in rows[0]["actions"])
    assert set(v3) == {"Activate", "Add challenger"}
    assert rows[1]["actions"] == []
    html = page.content.decode()
    assert "retrain: spx" in html and "disabled" in html
    assert "registry-rollback" in html and "model=spx" in html


def test_the_version_page_shows_its_model_and_links_back(operator_client: Client, two_models):
    v3 = two_models["spx"][2]
    page = operator_client.get(f"{VERSIONS}{v3.pk}/change/")
    html = page.content.decode()
    spx = RegisteredModel.objects.get(name="spx")
    assert page.context["model_name"] == "spx"
    assert f'href="/admin/models_registry/registeredmodel/{spx.pk}/change/"' in html
    assert page.context["show_challenger_add"] and not page.context["show_challenger_remove"]


def test_add_then_remove_a_challenger_with_a_reason(
    operator: User, operator_client: Client, two_models
) -> None:
    v3 = two_models["spx"][2]
    not_yet = operator_client.get(f"{VERSIONS}{v3.pk}/challenger/remove/")
    assert not_yet.context["notice"] == "v3 is not a challenger; confirming changes nothing."
    page = operator_client.get(f"{VERSIONS}{v3.pk}/challenger/add/")
    assert page.context["notice"] == ""
    assert page.context["model"].name == "spx" and page.context["current"].label == "v2"
    assert not challengers_of(model="spx").exists()  # nothing before the reason
    response = confirm(operator_client, page, "shadow-score the new window")
    assert [v.label for v in challengers_of(model="spx")] == ["v3"]
    assert "Added as a challenger: v3 of spx." in messages_of(response)
    event = ActivationEvent.objects.order_by("-pk").first()
    assert (event.model.name, event.action, event.to_version, event.actor) == (
        "spx",
        "challenger_add",
        v3,
        operator,
    )
    assert event.reason == "shadow-score the new window"

    page = operator_client.get(f"{VERSIONS}{v3.pk}/challenger/remove/")
    confirm(operator_client, page, "enough evidence")
    assert not challengers_of(model="spx").exists()
    assert ActivationEvent.objects.order_by("-pk").first().action == "challenger_remove"
    assert champion_of(model="spx").label == "v2"


def test_adding_the_champion_as_a_challenger_is_blocked_and_changes_nothing(
    operator_client: Client, two_models
) -> None:
    v2 = two_models["spx"][1]
    page = operator_client.get(f"{VERSIONS}{v2.pk}/challenger/add/")
    assert "champion of spx" in page.context["blocked"]
    before = ActivationEvent.objects.count()
    response = confirm(operator_client, page, "try anyway")
    assert any("cannot also be a challenger" in m for m in messages_of(response))
    assert ActivationEvent.objects.count() == before


def test_rollback_acts_on_the_versions_model_only(operator_client: Client, two_models) -> None:
    spx_v2 = two_models["spx"][1]
    page = operator_client.get(f"{VERSIONS}{spx_v2.pk}/change/")
    rollback = operator_client.get(page.context["rollback_url"])
    assert rollback.context["model"].name == "spx"
    assert (rollback.context["current"].label, rollback.context["target"].label) == ("v2", "v1")
    response = confirm(operator_client, rollback, "v2 misbehaves")
    assert "Rolled back spx: v1 is active again (was v2)." in messages_of(response)
    assert champion_of(model="spx").label == "v1"
    assert champion_of(model="ndx").label == "v1"
    event = ActivationEvent.objects.order_by("-pk").first()
    assert (event.model.name, event.action, event.reason) == ("spx", "rollback", "v2 misbehaves")


def test_bulk_rollback_of_two_models_rows_is_refused(operator_client: Client, two_models) -> None:
    before = ActivationEvent.objects.count()
    response = operator_client.post(
        VERSIONS,
        {
            "action": "rollback_to_previous",
            "index": "0",
            "_selected_action": [str(two_models["spx"][1].pk), str(two_models["ndx"][0].pk)],
        },
        follow=True,
    )
    assert any("exactly one model" in m for m in messages_of(response))
    assert ActivationEvent.objects.count() == before
    # One model's rows: its own rollback page.
    response = operator_client.post(
        VERSIONS,
        {
            "action": "rollback_to_previous",
            "index": "0",
            "_selected_action": [str(two_models["ndx"][0].pk)],
        },
        follow=True,
    )
    assert response.context["model"].name == "ndx"
    assert "v1 was the first active version" in response.context["blocked"]


def test_activate_within_a_model_leaves_the_other_models_champion(
    operator_client: Client, two_models
) -> None:
    v3 = two_models["spx"][2]
    page = operator_client.get(f"{VERSIONS}{v3.pk}/activate/")
    assert page.context["model"].name == "spx"
    confirm(operator_client, page, "v3 is better")
    assert champion_of(model="spx").label == "v3"
    assert champion_of(model="ndx").label == "v1"


def test_viewer_sees_the_models_but_no_lifecycle_buttons(viewer_client: Client, two_models):
    spx = RegisteredModel.objects.get(name="spx")
    page = viewer_client.get(f"{MODELS}{spx.pk}/change/")
    assert page.status_code == 200
    assert all(row["actions"] == [] for row in page.context["version_rows"])
    v3 = two_models["spx"][2]
    assert viewer_client.get(f"{VERSIONS}{v3.pk}/challenger/add/").status_code == 403
    assert (
        viewer_client.post(f"{VERSIONS}{v3.pk}/challenger/add/", {"reason": "x"}).status_code == 403
    )
    assert not challengers_of(model="spx").exists()
