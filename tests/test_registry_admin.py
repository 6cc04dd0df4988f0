"""Registry admin through the real admin views: lifecycle actions and read-only pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import Client

from models_registry.models import ActivationEvent, ModelVersion, TrainingRun
from models_registry.services.activation import model_version_activate
from tests.factories import (
    SMALL_CONFIG,
    active_labels,
    logged_in,
    make_user,
    make_version,
)

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/models_registry/modelversion/"
CONFIRM_TEMPLATE = "admin/models_registry/modelversion/confirm_action.html"


def run_action(client: Client, action: str, *versions: ModelVersion) -> HttpResponse:
    """Submit the changelist's action form as the browser does, and follow the redirect."""
    return client.post(
        CHANGELIST,
        {
            "action": action,
            "index": "0",
            "select_across": "0",
            "_selected_action": [str(version.pk) for version in versions],
        },
        follow=True,
    )


def shown_messages(response: HttpResponse) -> list[tuple[str, str]]:
    """(level tag, text) of every message the followed page rendered."""
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_changelist_offers_the_lifecycle_actions_but_not_delete(operator_client: Client) -> None:
    make_version()
    response = operator_client.get(CHANGELIST)
    assert response.status_code == 200
    choices = dict(response.context["action_form"].fields["action"].choices)
    assert "activate_selected" in choices
    assert "rollback_to_previous" in choices
    assert "delete_selected" not in choices
    assert b'name="_selected_action"' in response.content


def confirm(client: Client, page: HttpResponse, reason: str, **extra: str) -> HttpResponse:
    """Submit the confirmation page the way the browser does: its own URL, its ``next``."""
    assert page.status_code == 200
    assert page.templates[0].name == CONFIRM_TEMPLATE
    data = {"reason": reason, "next": page.context["back"], **extra}
    return client.post(page.request["PATH_INFO"], data, follow=True)


def test_activate_action_leads_to_the_reason_form_and_changes_nothing_yet(
    operator_client: Client,
) -> None:
    version = make_version()
    response = run_action(operator_client, "activate_selected", version)
    assert response.redirect_chain[-1][0].startswith(
        f"/admin/models_registry/modelversion/{version.pk}/activate/?next="
    )
    assert response.templates[0].name == CONFIRM_TEMPLATE
    assert response.context["target"] == version
    assert b'name="reason"' in response.content
    assert active_labels() == []
    assert not ActivationEvent.objects.exists()


def test_activate_action_then_reason_activates_and_records_the_operator(
    operator: User, operator_client: Client
) -> None:
    version = make_version()
    page = run_action(operator_client, "activate_selected", version)
    response = confirm(operator_client, page, "new model validated offline")
    # Back on the list the action was started from.
    assert response.redirect_chain[-1] == (CHANGELIST, 302)
    version.refresh_from_db()
    assert version.is_active and version.activated_at is not None
    event = ActivationEvent.objects.get()
    assert event.action == "activate"
    assert event.to_version == version and event.from_version is None
    assert event.actor == operator and event.actor_name == "operator"
    assert event.reason == "new model validated offline"
    assert ("success", "v1 is now active (was none).") in shown_messages(response)
    # The admin template capitalises the first letter of every message.
    assert '<li class="success">V1 is now active (was none).</li>' in response.content.decode()


def test_activate_action_with_two_versions_selected_warns_and_changes_nothing(
    operator_client: Client,
) -> None:
    v1, v2 = make_version(), make_version()
    response = run_action(operator_client, "activate_selected", v1, v2)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == CHANGELIST
    levels_and_texts = shown_messages(response)
    assert any(level == "warning" and "exactly one" in text for level, text in levels_and_texts)
    assert active_labels() == []
    assert not ActivationEvent.objects.exists()


@pytest.mark.parametrize(
    ("action", "add"), [("challenger_add_selected", True), ("challenger_remove_selected", False)]
)
def test_challenger_actions_lead_to_the_reason_form_then_change_the_flag(
    operator_client: Client, action: str, add: bool
) -> None:
    make_version(is_active=True)
    version = make_version(is_challenger=not add)
    page = run_action(operator_client, action, version)
    verb = "add" if add else "remove"
    assert page.redirect_chain[-1][0].startswith(
        f"/admin/models_registry/modelversion/{version.pk}/challenger/{verb}/?next="
    )
    version.refresh_from_db()
    assert version.is_challenger is not add  # nothing yet: the reason comes first
    response = confirm(operator_client, page, "shadow it")
    assert response.redirect_chain[-1] == (CHANGELIST, 302)
    version.refresh_from_db()
    assert version.is_challenger is add
    assert ActivationEvent.objects.get().action == f"challenger_{verb}"


def test_challenger_action_with_two_versions_selected_warns_and_changes_nothing(
    operator_client: Client,
) -> None:
    v1, v2 = make_version(), make_version()
    response = run_action(operator_client, "challenger_add_selected", v1, v2)
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert any(
        level == "warning" and "exactly one" in text for level, text in shown_messages(response)
    )
    assert not ModelVersion.objects.filter(is_challenger=True).exists()
    assert not ActivationEvent.objects.exists()


def test_lifecycle_actions_are_not_offered_without_manage_registry(viewer_client: Client) -> None:
    make_version()
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    # Neither action is left, so Django drops the whole action bar.
    assert response.context["action_form"] is None
    assert b'name="_selected_action"' not in response.content


def test_activate_action_without_manage_registry_changes_nothing(viewer_client: Client) -> None:
    version = make_version()
    response = run_action(viewer_client, "activate_selected", version)
    assert response.status_code == 200
    assert not response.redirect_chain  # not sent to the confirmation page
    version.refresh_from_db()
    assert not version.is_active
    assert not ActivationEvent.objects.exists()


def test_rollback_action_without_manage_registry_changes_nothing(viewer_client: Client) -> None:
    v1, v2 = make_version(), make_version()
    model_version_activate(version=v1.version, actor_name="setup")
    model_version_activate(version=v2.version, actor_name="setup")
    response = run_action(viewer_client, "rollback_to_previous", v2)
    assert not response.redirect_chain
    assert active_labels() == ["v2"]
    assert ActivationEvent.objects.count() == 2


def test_rollback_action_then_reason_restores_the_previous_version(
    operator: User, operator_client: Client
) -> None:
    v1, v2 = make_version(), make_version()
    confirm(operator_client, run_action(operator_client, "activate_selected", v1), "first")
    confirm(operator_client, run_action(operator_client, "activate_selected", v2), "second")
    assert active_labels() == ["v2"]

    page = run_action(operator_client, "rollback_to_previous", v2)
    assert page.redirect_chain[-1][0].startswith("/admin/models_registry/modelversion/rollback/")
    assert page.context["current"] == v2 and page.context["target"] == v1
    assert active_labels() == ["v2"]  # nothing happens before the reason is given

    response = confirm(operator_client, page, "v2 misbehaves")
    assert active_labels() == ["v1"]
    event = ActivationEvent.objects.order_by("-pk").first()
    assert event is not None
    assert event.action == "rollback"
    assert event.from_version == v2 and event.to_version == v1
    assert event.actor == operator
    assert event.reason == "v2 misbehaves"
    assert (
        "success",
        "Rolled back default: v1 is active again (was v2).",
    ) in shown_messages(response)


def test_rollback_with_nothing_to_roll_back_explains_and_refuses(
    operator_client: Client,
) -> None:
    version = make_version()
    model_version_activate(version=version.version, actor_name="setup")
    page = run_action(operator_client, "rollback_to_previous", version)
    assert "v1 was the first active version" in page.content.decode()
    assert b'name="reason"' not in page.content  # no form to submit

    # A POST anyway (say, a stale tab) is refused by the service and reported.
    response = confirm(operator_client, page, "try anyway")
    assert any(
        level == "error" and text.startswith("Not rolled back:")
        for level, text in shown_messages(response)
    )
    assert active_labels() == ["v1"]
    assert ActivationEvent.objects.filter(action="rollback").count() == 0


def test_activate_refuses_a_tampered_artifact_and_keeps_the_active_version(
    operator_client: Client,
) -> None:
    v1, v2 = make_version(), make_version()
    model_version_activate(version=v1.version, actor_name="setup")
    with (settings.ARTIFACTS_DIR / v2.artifact_name).open("ab") as handle:
        handle.write(b"tampered")

    page = run_action(operator_client, "activate_selected", v2)
    response = confirm(operator_client, page, "promote v2")
    assert any(
        level == "error" and text.startswith("Not activated:")
        for level, text in shown_messages(response)
    )
    assert active_labels() == ["v1"]
    v2.refresh_from_db()
    assert not v2.is_active and v2.activated_at is None
    assert ActivationEvent.objects.count() == 1


def test_activate_on_the_active_version_is_a_noop(operator_client: Client) -> None:
    version = make_version()
    model_version_activate(version=version.version, actor_name="setup")
    page = run_action(operator_client, "activate_selected", version)
    assert "already active" in page.content.decode()
    response = confirm(operator_client, page, "again")
    assert ("info", "v1 is already active.") in shown_messages(response)
    assert ActivationEvent.objects.count() == 1


def test_version_changelist_shows_the_metric_columns(operator_client: Client) -> None:
    make_version()
    response = operator_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for header in ("Val. accuracy", "Val. ROC AUC", "Always-up accuracy"):
        assert f"<span>{header}</span>" in html
    # make_version's metrics, formatted by the admin: accuracy, AUC, always-up accuracy.
    for field, value in (
        ("validation_accuracy_display", "0.5600"),
        ("validation_auc_display", "0.5500"),
        ("baseline_accuracy_display", "0.5300"),
    ):
        assert f'<td class="field-{field}">{value}</td>' in html


@pytest.fixture
def registry_rows(operator: User) -> dict[str, object]:
    """One row of each registry model, for the read-only checks."""
    version = make_version()
    run = TrainingRun.objects.create(
        source="command", config=SMALL_CONFIG, requested_by=operator, model_version=version
    )
    event = model_version_activate(version=version.version, actor=operator).event
    assert event is not None
    return {"modelversion": version, "trainingrun": run, "activationevent": event}


@pytest.mark.parametrize("model", ["modelversion", "trainingrun", "activationevent"])
def test_registry_changelists_render(
    operator_client: Client, registry_rows: dict[str, object], model: str
) -> None:
    response = operator_client.get(f"/admin/models_registry/{model}/")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("model", ["modelversion", "trainingrun", "activationevent"])
def test_registry_change_view_is_read_only(
    operator_client: Client, registry_rows: dict[str, object], model: str
) -> None:
    row = registry_rows[model]
    url = f"/admin/models_registry/{model}/{row.pk}/change/"
    page = operator_client.get(url)
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert b'name="_save"' not in page.content
    assert b'name="_continue"' not in page.content

    before = type(row).objects.values().get(pk=row.pk)
    refused = operator_client.post(url, {"_save": "Save", "status": "failed", "reason": "edited"})
    assert refused.status_code == 403
    assert type(row).objects.values().get(pk=row.pk) == before


@pytest.mark.parametrize("model", ["modelversion", "trainingrun", "activationevent"])
def test_registry_add_view_is_refused(
    operator_client: Client, registry_rows: dict[str, object], model: str
) -> None:
    count = type(registry_rows[model]).objects.count()
    assert operator_client.get(f"/admin/models_registry/{model}/add/").status_code == 403
    assert operator_client.post(f"/admin/models_registry/{model}/add/", {}).status_code == 403
    assert type(registry_rows[model]).objects.count() == count


@pytest.mark.parametrize("model", ["modelversion", "trainingrun", "activationevent"])
def test_registry_delete_view_is_refused(
    operator_client: Client, registry_rows: dict[str, object], model: str
) -> None:
    row = registry_rows[model]
    url = f"/admin/models_registry/{model}/{row.pk}/delete/"
    assert operator_client.get(url).status_code == 403
    assert operator_client.post(url, {"post": "yes"}).status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()


def test_non_staff_registry_operator_cannot_reach_the_admin() -> None:
    version = make_version()
    user = make_user("api-only", registry=True, staff=False)
    client = logged_in(user)
    response = run_action(client, "activate_selected", version)
    assert response.redirect_chain and "/admin/login/" in response.redirect_chain[0][0]
    url = f"/admin/models_registry/modelversion/{version.pk}/activate/"
    refused = client.post(url, {"reason": "not staff"})
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    version.refresh_from_db()
    assert not version.is_active
    assert not ActivationEvent.objects.exists()
