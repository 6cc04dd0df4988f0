"""Admin pages through the real admin views: the model version page, the activate and roll back
confirmation pages, the monitoring snapshot lists and the editable beat schedules."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from features.engineering import FEATURE_NAMES
from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from monitoring.models import DriftSnapshot, FreshnessSnapshot
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, active_labels, logged_in, make_user, make_version
from tests.test_registry_admin import shown_messages

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/models_registry/modelversion/"
ROLLBACK = "/admin/models_registry/modelversion/rollback/"


def change_url(version: ModelVersion) -> str:
    return f"/admin/models_registry/modelversion/{version.pk}/change/"


def activate_url(version: ModelVersion) -> str:
    return f"/admin/models_registry/modelversion/{version.pk}/activate/"


class _SectionTables(HTMLParser):
    """Rows of cell texts (th and td) inside the element with id ``section``."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section = section
        self.depth = 0  # depth of open <div>s inside the section; 0 = outside
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and (self.depth or dict(attrs).get("id") == self.section):
            self.depth += 1
        if not self.depth:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag in {"td", "th"} and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "div":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            return
        self.text.append(data)
        if self.cell is not None:
            self.cell.append(data)


def section(response: HttpResponse, name: str) -> tuple[list[list[str]], str]:
    """(table rows, whole text) of one section of the version page."""
    parser = _SectionTables(f"section-{name}")
    parser.feed(response.content.decode())
    assert parser.text, f"section-{name} is missing from the page"
    return parser.rows, " ".join("".join(parser.text).split())


def row_named(rows: list[list[str]], name: str) -> list[str]:
    matches = [row for row in rows if row and row[0] == name]
    assert len(matches) == 1, f"{name!r} not found once in {rows}"
    return matches[0]


def f4(value: float) -> str:
    return f"{value:.4f}"


@pytest.fixture
def superuser_client() -> Client:
    User.objects.create_superuser("root", "root@example.com", "pw-root")
    return logged_in(User.objects.get(username="root"))


@pytest.fixture
def trained() -> ModelVersion:
    """A version trained for real on the bundled candles, with every JSON column filled."""
    _, version = model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command"
    )
    return version


# --- the model version page ----------------------------------------------------------------


def test_version_page_shows_metrics_beside_both_baselines(
    operator_client: Client, trained: ModelVersion
) -> None:
    response = operator_client.get(change_url(trained))
    assert response.status_code == 200
    rows, _ = section(response, "metrics")
    assert rows[0] == [
        "metric",
        "train",
        "validation",
        "majority class",
        "always up",
        "validation vs always up",
    ]
    metrics = trained.metrics
    baselines = metrics["baselines"]
    for name in ("accuracy", "roc_auc", "log_loss", "brier"):
        row = row_named(rows, name)
        assert row[1:5] == [
            f4(metrics["train"][name]),
            f4(metrics["validation"][name]),
            f4(baselines["majority_class"][name]),
            f4(baselines["always_up"][name]),
        ]
    delta = metrics["validation"]["accuracy"] - baselines["always_up"]["accuracy"]
    expected = f"{delta:+.4f} " + ("better" if delta > 0 else "not better")
    assert row_named(rows, "accuracy")[5] == expected
    assert row_named(rows, "rows")[1:3] == [
        str(metrics["train"]["rows"]),
        str(metrics["validation"]["rows"]),
    ]


def test_version_page_shows_dataset_window_and_fingerprint(
    operator_client: Client, trained: ModelVersion
) -> None:
    rows, _ = section(operator_client.get(change_url(trained)), "dataset")
    dataset = trained.dataset
    assert row_named(rows, "symbols") == ["symbols", "SP500"]
    for label, key in (
        ("first candle", "first_candle"),
        ("last candle", "last_candle"),
        ("rows", "rows"),
        ("train rows", "train_rows"),
        ("validation rows", "validation_rows"),
        ("gap rows", "gap_rows"),
    ):
        assert row_named(rows, label) == [label, str(dataset[key])]
    assert len(dataset["fingerprint"]) == 64
    assert row_named(rows, "sha256 fingerprint") == ["sha256 fingerprint", dataset["fingerprint"]]


def test_version_page_shows_config_feature_spec_artifact_and_libraries(
    operator_client: Client, trained: ModelVersion
) -> None:
    response = operator_client.get(change_url(trained))
    _, config_text = section(response, "config")
    # Pretty JSON that parses back to the config the version was trained with.
    assert config_text.startswith("Training config {")
    assert json.loads(config_text.removeprefix("Training config")) == trained.config

    features, _ = section(response, "features")
    assert row_named(features, "model inputs, in order")[1] == ", ".join(SMALL_CONFIG["features"])
    assert row_named(features, "window") == ["window", "10"]

    artifact, _ = section(response, "artifact")
    assert row_named(artifact, "artifact name")[1] == trained.artifact_name
    assert row_named(artifact, "artifact sha256")[1] == trained.artifact_sha256
    assert f"{trained.artifact_size} bytes" in row_named(artifact, "artifact size")[1]
    assert row_named(artifact, "sklearn")[1] == trained.library_versions["sklearn"]


def test_version_page_shows_baseline_statistics_without_the_samples(
    operator_client: Client, trained: ModelVersion
) -> None:
    response = operator_client.get(change_url(trained))
    rows, _ = section(response, "baseline")
    assert rows[0] == [
        "feature",
        "model input",
        "count",
        "missing",
        "mean",
        "std",
        "min",
        "max",
        "p05",
        "p50",
        "p95",
        "PSI threshold",
    ]
    features = trained.baseline["features"]
    assert [row[0] for row in rows[1:-1]] == [n for n in FEATURE_NAMES if n in features]
    for name, stats in features.items():
        row = row_named(rows, name)
        assert row[1] == ("yes" if name in SMALL_CONFIG["features"] else "no")
        assert row[2:] == [
            str(stats["count"]),
            str(stats["missing"]),
            f4(stats["mean"]),
            f4(stats["std"]),
            f4(stats["min"]),
            f4(stats["max"]),
            f4(stats["quantiles"]["p05"]),
            f4(stats["quantiles"]["p50"]),
            f4(stats["quantiles"]["p95"]),
            f4(stats["drift_thresholds"]["psi"]["threshold"]),
        ]
    prediction = row_named(rows, "predicted probability (validation)")
    assert prediction[4] == f4(trained.baseline["prediction"]["mean"])

    html = response.content.decode()
    # The samples (thousands of floats per feature) stay in the database.
    assert len(html) < len(json.dumps(trained.baseline)) / 2
    middle = features["simple_return"]["sample"][len(features["simple_return"]["sample"]) // 2]
    assert repr(middle) not in html


def test_version_page_shows_only_this_versions_activation_history(
    operator_client: Client, trained: ModelVersion
) -> None:
    other, later = make_version(), make_version()
    model_version_activate(version=other.version, actor_name="setup", reason="unrelated start")
    model_version_activate(version=trained.version, actor_name="alice", reason="promote trained")
    model_version_activate(version=later.version, actor_name="bob", reason="move on")

    rows, _ = section(operator_client.get(change_url(trained)), "history")
    assert rows[0][:5] == ["when", "action", "from", "to", "by"]
    body = rows[1:]
    # Newest first; the event that never touched this version is left out.
    assert [row[1:6] for row in body] == [
        ["activate", trained.label, later.label, "bob", "move on"],
        ["activate", other.label, trained.label, "alice", "promote trained"],
    ]


def test_version_page_says_when_a_version_was_never_activated(
    operator_client: Client, trained: ModelVersion
) -> None:
    _, text = section(operator_client.get(change_url(trained)), "history")
    assert f"{trained.label} has never been activated." in text


def test_version_page_shows_no_outcomes_yet_then_daily_live_performance(
    operator_client: Client, trained: ModelVersion
) -> None:
    _, text = section(operator_client.get(change_url(trained)), "live")
    assert "No outcomes yet." in text

    day = datetime.datetime(2024, 3, 5, 15, 0, tzinfo=datetime.UTC)
    # Three hits out of four; Brier = (0.09 + 0.36 + 0.09 + 0.04) / 4 = 0.145.
    for prediction, outcome in ((0.7, 1), (0.6, 0), (0.3, 0), (0.8, 1)):
        PredictionRecord.objects.create(
            symbol="SP500",
            model_version=trained,
            features={},
            prediction=prediction,
            confidence=abs(prediction - 0.5) * 2,
            as_of=day,
            event_time=day,
            latency_ms=1.0,
            outcome=outcome,
        )
    PredictionRecord.objects.create(  # no outcome yet: not counted
        symbol="SP500",
        model_version=trained,
        features={},
        prediction=0.9,
        confidence=0.8,
        as_of=day,
        event_time=day,
        latency_ms=1.0,
    )
    rows, text = section(operator_client.get(change_url(trained)), "live")
    assert "No outcomes yet." not in text
    validation = trained.metrics["validation"]
    assert rows[1][:6] == [
        "2024-03-05",
        "4",
        "0.7500",
        f4(validation["accuracy"]),
        "0.1450",
        f4(validation["brier"]),
    ]


class _References(HTMLParser):
    """Every URL in a page's src, href, action, srcset and data attributes and in the url(...)
    of inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in {"src", "href", "action", "srcset", "xlink:href", "data"}:
                self.urls.append(value)
            if value and name == "style":
                self.urls += re.findall(r"url\(([^)]*)\)", value)


def remote_references(html: str) -> list[str]:
    """The URLs (and stylesheet imports) of a page that point to another host."""
    parser = _References()
    parser.feed(html)
    remote = [url for url in parser.urls if re.match(r"\s*['\"]?(https?:)?//", url)]
    return remote + re.findall(r"@import[^;]*|url\(\s*['\"]?(?:https?:)?//[^)]*\)", html)


def test_admin_pages_load_nothing_from_another_host(
    operator_client: Client, trained: ModelVersion
) -> None:
    for url in (change_url(trained), CHANGELIST, activate_url(trained), ROLLBACK):
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert remote_references(response.content.decode()) == [], url


def test_version_page_explains_the_promotion_policy(operator_client: Client, settings) -> None:
    weak = make_version(beats_baseline=False)
    settings.PROMOTION_POLICY = "enforce"
    _, text = section(operator_client.get(change_url(weak)), "promotion")
    assert "does not beat the always-up baseline" in text
    assert "PROMOTION_POLICY=enforce refuses" in text


def test_version_page_offers_activate_for_a_ready_inactive_version(
    operator_client: Client,
) -> None:
    version = make_version()
    html = operator_client.get(change_url(version)).content.decode()
    assert f'href="{activate_url(version)}?next=' in html
    assert 'class="registry-rollback"' not in html


def test_version_page_offers_roll_back_on_the_active_version(operator_client: Client) -> None:
    version = make_version()
    model_version_activate(version=version.version, actor_name="setup")
    html = operator_client.get(change_url(version)).content.decode()
    assert f'href="{ROLLBACK}?next=' in html
    assert 'class="registry-activate"' not in html


def test_changelist_has_a_roll_back_tool_and_a_per_row_activate_link(
    operator_client: Client,
) -> None:
    active, ready = make_version(), make_version()
    make_version(status="failed")
    model_version_activate(version=active.version, actor_name="setup")
    response = operator_client.get(CHANGELIST)
    html = response.content.decode()
    assert f'href="{ROLLBACK}?next=' in html
    assert html.count('<a class="button" href="/admin/models_registry/modelversion/') == 1
    assert f'<a class="button" href="{activate_url(ready)}?next=' in html
    assert '<td class="field-lifecycle_link">active</td>' in html
    assert '<td class="field-lifecycle_link">—</td>' in html  # the failed version


def test_changelist_does_not_load_the_baselines(operator_client: Client, trained) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(CHANGELIST)
    assert response.context["cl"].result_count == 1
    listing = [q["sql"] for q in queries if 'FROM "models_registry_modelversion"' in q["sql"]]
    assert listing and all('"baseline"' not in sql for sql in listing)
    # The version page, which shows the baseline statistics, does load it.
    with CaptureQueriesContext(connection) as queries:
        operator_client.get(change_url(trained))
    assert any('"baseline"' in q["sql"] for q in queries)


# --- activating through the reason form ----------------------------------------------------


def test_activate_page_asks_for_a_reason_with_a_csrf_token(operator_client: Client) -> None:
    version = make_version()
    response = operator_client.get(activate_url(version))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<textarea name="reason"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'name="force"' not in html  # warn policy: nothing to override
    assert not version.is_active


def test_activate_without_a_reason_reshows_the_form_and_changes_nothing(
    operator_client: Client,
) -> None:
    version = make_version()
    response = operator_client.post(activate_url(version), {"reason": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert "This field is required." in response.content.decode()
    assert active_labels() == []
    assert not ActivationEvent.objects.exists()


def test_activate_with_a_reason_activates_reports_and_records_it(
    operator: User, operator_client: Client
) -> None:
    version = make_version()
    back = change_url(version)
    response = operator_client.post(
        activate_url(version), {"reason": "  beats v0 on last week  ", "next": back}
    )
    assert response.status_code == 302 and response["Location"] == back
    page = operator_client.get(back)
    assert ("success", "v1 is now active (was none).") in shown_messages(page)
    event = ActivationEvent.objects.get()
    assert event.reason == "beats v0 on last week"
    assert event.actor == operator and event.actor_name == "operator"
    assert not event.forced and event.warning == ""
    assert active_labels() == ["v1"]


def test_activate_ignores_a_next_url_pointing_elsewhere(operator_client: Client) -> None:
    version = make_version()
    response = operator_client.post(
        activate_url(version), {"reason": "ok", "next": "https://evil.example/phish"}
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(version)


def test_activate_under_warn_reports_the_policy_warning(operator_client: Client) -> None:
    weak = make_version(beats_baseline=False)
    page = operator_client.get(activate_url(weak))
    assert "PROMOTION_POLICY=warn lets it be activated" in page.content.decode()
    response = operator_client.post(activate_url(weak), {"reason": "try it"}, follow=True)
    shown = shown_messages(response)
    assert ("success", "v1 is now active (was none).") in shown
    assert any(
        level == "warning" and "does not beat the always-up baseline" in text
        for level, text in shown
    )
    event = ActivationEvent.objects.get()
    assert "does not beat" in event.warning and not event.forced


def test_activate_under_enforce_offers_force_and_refuses_without_it(
    operator_client: Client, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    current, weak = make_version(), make_version(beats_baseline=False)
    model_version_activate(version=current.version, actor_name="setup")

    page = operator_client.get(activate_url(weak))
    html = page.content.decode()
    assert 'name="force"' in html
    assert "Force the activation despite PROMOTION_POLICY=enforce" in html

    refused = operator_client.post(activate_url(weak), {"reason": "please"})
    # Still on the form, so the operator can decide to force it.
    assert refused.status_code == 200
    assert 'name="force"' in refused.content.decode()
    assert any(
        level == "error" and text.startswith("Not activated:") and "enforce" in text
        for level, text in shown_messages(refused)
    )
    assert active_labels() == [current.label]
    assert ActivationEvent.objects.count() == 1


def test_activate_under_enforce_with_force_activates_and_marks_it_forced(
    operator: User, operator_client: Client, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    weak = make_version(beats_baseline=False)
    response = operator_client.post(
        activate_url(weak), {"reason": "incident: needs the new features", "force": "on"}
    )
    assert response.status_code == 302
    page = operator_client.get(response["Location"])
    shown = shown_messages(page)
    assert ("success", "v1 is now active (was none) (forced past PROMOTION_POLICY=enforce).") in (
        shown
    )
    assert any(level == "warning" for level, _ in shown)
    event = ActivationEvent.objects.get()
    assert event.forced and event.actor == operator
    assert event.reason == "incident: needs the new features"


def test_activate_under_enforce_does_not_offer_force_for_a_version_that_beats_the_baseline(
    operator_client: Client, settings
) -> None:
    settings.PROMOTION_POLICY = "enforce"
    good = make_version()
    assert 'name="force"' not in operator_client.get(activate_url(good)).content.decode()
    operator_client.post(activate_url(good), {"reason": "good one"})
    assert active_labels() == [good.label]


def test_activate_page_of_a_failed_version_explains_and_has_no_form(
    operator_client: Client,
) -> None:
    failed = make_version(status="failed")
    page = operator_client.get(activate_url(failed))
    assert "only a ready version can be activated" in page.content.decode()
    assert 'name="reason"' not in page.content.decode()


def test_activate_post_without_csrf_token_is_refused(operator: User) -> None:
    version = make_version()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(activate_url(version), {"reason": "no token"})
    assert response.status_code == 403
    assert active_labels() == []


# --- rolling back through its form ---------------------------------------------------------


def test_roll_back_page_shows_what_changes_and_rolls_back_with_a_reason(
    operator: User, operator_client: Client
) -> None:
    v1, v2 = make_version(), make_version()
    model_version_activate(version=v1.version, actor_name="setup")
    model_version_activate(version=v2.version, actor_name="setup")

    page = operator_client.get(f"{ROLLBACK}?next={CHANGELIST}")
    assert page.status_code == 200
    table = page.content.decode()
    assert '<th scope="row">active now</th><td>v2</td>' in table
    assert '<th scope="row">would become active</th><td>v1</td>' in table
    assert 'value="Roll back to v1"' in table

    missing = operator_client.post(ROLLBACK, {"reason": "", "next": CHANGELIST})
    assert missing.status_code == 200 and missing.context["form"].errors
    assert active_labels() == ["v2"]

    response = operator_client.post(ROLLBACK, {"reason": "latency regression", "next": CHANGELIST})
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    assert active_labels() == ["v1"]
    event = ActivationEvent.objects.order_by("-pk").first()
    assert event is not None
    assert (event.action, event.reason, event.actor) == ("rollback", "latency regression", operator)
    shown = shown_messages(operator_client.get(CHANGELIST))
    assert ("success", "Rolled back default: v1 is active again (was v2).") in shown


def test_roll_back_page_with_nothing_active_says_so(operator_client: Client) -> None:
    make_version()
    page = operator_client.get(ROLLBACK)
    assert (
        "No version of default is active, so there is nothing to roll back."
        in page.content.decode()
    )


# --- staff without the registry permission --------------------------------------------------


def test_staff_without_permission_see_no_lifecycle_buttons(viewer_client: Client) -> None:
    version = make_version()
    model_version_activate(version=version.version, actor_name="setup")
    inactive = make_version()
    listing = viewer_client.get(CHANGELIST).content.decode()
    assert listing.count("field-label") == 2  # the page did render the rows
    assert "/activate/" not in listing and "/rollback/" not in listing
    assert "field-lifecycle_link" not in listing
    for page in (change_url(version), change_url(inactive)):
        html = viewer_client.get(page).content.decode()
        assert "section-metrics" in html  # the page itself is visible
        assert "/activate/" not in html and "/rollback/" not in html


def test_staff_without_permission_are_refused_by_the_lifecycle_views(
    viewer_client: Client,
) -> None:
    v1, v2 = make_version(), make_version()
    model_version_activate(version=v1.version, actor_name="setup")
    assert viewer_client.get(activate_url(v2)).status_code == 403
    assert viewer_client.post(activate_url(v2), {"reason": "sneaky"}).status_code == 403
    assert viewer_client.get(ROLLBACK).status_code == 403
    assert viewer_client.post(ROLLBACK, {"reason": "sneaky"}).status_code == 403
    assert active_labels() == ["v1"]
    assert ActivationEvent.objects.count() == 1


def test_registry_permission_without_view_permission_is_refused() -> None:
    version = make_version()
    client = logged_in(make_user("blind", registry=True, staff=True))
    assert client.post(activate_url(version), {"reason": "blind"}).status_code == 403
    assert active_labels() == []


# --- monitoring snapshots and the prediction audit trail -----------------------------------


@pytest.fixture
def snapshots() -> dict[str, object]:
    version = make_version()
    make_version()  # the version filter only shows when there is a choice to make
    check = uuid.uuid4()
    now = timezone.now()
    ok = DriftSnapshot.objects.create(
        check_id=check,
        model=version.model,
        model_version=version,
        kind="feature",
        feature="simple_return",
        psi=0.0123,
        threshold=0.25,
        sample_size=480,
        status="ok",
        event_time=now,
    )
    drift = DriftSnapshot.objects.create(
        check_id=check,
        model=version.model,
        model_version=version,
        kind="feature",
        feature="momentum",
        psi=0.91,
        threshold=0.25,
        sample_size=480,
        status="drift",
        event_time=now,
    )
    DriftSnapshot.objects.create(
        model=version.model,
        model_version=version,
        kind="model",
        feature="verdict",
        status="ok",
        is_replay=True,
        event_time=now - datetime.timedelta(days=40),
    )
    fresh = FreshnessSnapshot.objects.create(
        model=version.model,
        component="upstream",
        subject="SP500",
        age_seconds=3 * 3600 + 5 * 60,
        threshold_seconds=2 * 86400,
        status="ok",
        event_time=now,
    )
    FreshnessSnapshot.objects.create(
        model=version.model,
        component="inference",
        subject="",
        age_seconds=None,
        status="unknown",
        event_time=now,
    )
    record = PredictionRecord.objects.create(
        symbol="SP500",
        model_version=version,
        features={"momentum": 0.1},
        prediction=0.6,
        confidence=0.2,
        as_of=now,
        latency_ms=3.5,
    )
    return {"check": check, "ok": ok, "drift": drift, "fresh": fresh, "record": record}


def test_drift_snapshot_list_has_columns_filters_search_and_date_hierarchy(
    superuser_client: Client, snapshots: dict[str, object]
) -> None:
    url = "/admin/monitoring/driftsnapshot/"
    response = superuser_client.get(url)
    assert response.status_code == 200
    cl = response.context["cl"]
    assert cl.result_count == 3
    assert cl.date_hierarchy == "event_time"
    assert [spec.title for spec in cl.filter_specs] == [
        "kind",
        "status",
        "feature",
        "model version",
        "is replay",
    ]
    html = response.content.decode()
    assert '<td class="field-psi_display">0.9100</td>' in html
    assert '<td class="field-threshold_display">0.2500</td>' in html
    assert '<td class="field-sample_size">480</td>' in html

    assert superuser_client.get(url, {"status__exact": "drift"}).context["cl"].result_count == 1
    assert superuser_client.get(url, {"is_replay__exact": "1"}).context["cl"].result_count == 1
    assert superuser_client.get(url, {"q": "momentum"}).context["cl"].result_count == 1
    by_check = superuser_client.get(url, {"q": str(snapshots["check"])})
    assert by_check.context["cl"].result_count == 2
    # Not a UUID: simply no match, not a server error.
    assert superuser_client.get(url, {"q": "not-a-uuid"}).status_code == 200


def test_freshness_snapshot_list_has_columns_filters_and_search(
    superuser_client: Client, snapshots: dict[str, object]
) -> None:
    url = "/admin/monitoring/freshnesssnapshot/"
    response = superuser_client.get(url)
    assert response.status_code == 200
    cl = response.context["cl"]
    assert cl.result_count == 2 and cl.date_hierarchy == "event_time"
    assert [spec.title for spec in cl.filter_specs] == [
        "component",
        "status",
        "subject",
        "is replay",
    ]
    html = response.content.decode()
    assert '<td class="field-age_display">3 h 5 min</td>' in html
    assert '<td class="field-threshold_display">2 d</td>' in html
    assert (
        superuser_client.get(url, {"component__exact": "upstream"}).context["cl"].result_count == 1
    )
    assert superuser_client.get(url, {"q": "SP500"}).context["cl"].result_count == 1


def test_prediction_list_renders_and_finds_a_request_id(
    superuser_client: Client, snapshots: dict[str, object]
) -> None:
    record = snapshots["record"]
    url = "/admin/predictions/predictionrecord/"
    response = superuser_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].date_hierarchy == "created_at"
    found = superuser_client.get(url, {"q": str(record.request_id)})
    assert list(found.context["cl"].result_list) == [record]
    assert superuser_client.get(url, {"q": "garbage"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("monitoring/driftsnapshot", "drift"),
        ("monitoring/freshnesssnapshot", "fresh"),
        ("predictions/predictionrecord", "record"),
    ],
)
def test_snapshot_and_prediction_admins_are_read_only(
    superuser_client: Client, snapshots: dict[str, object], path: str, key: str
) -> None:
    row = snapshots[key]
    model = type(row)
    before = model.objects.values().get(pk=row.pk)
    count = model.objects.count()
    base = f"/admin/{path}/"

    view = superuser_client.get(f"{base}{row.pk}/change/")
    assert view.status_code == 200
    assert not view.context["has_change_permission"]
    assert b'name="_save"' not in view.content

    assert superuser_client.get(f"{base}add/").status_code == 403
    assert superuser_client.post(f"{base}add/", {"status": "ok"}).status_code == 403
    changed = superuser_client.post(f"{base}{row.pk}/change/", {"status": "stale"})
    assert changed.status_code == 403
    delete = f"{base}{row.pk}/delete/"
    assert superuser_client.get(delete).status_code == 403
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403

    assert model.objects.count() == count
    assert model.objects.values().get(pk=row.pk) == before
    listing = superuser_client.get(base)
    assert listing.context["action_form"] is None  # no bulk delete either


# --- beat schedules stay editable ----------------------------------------------------------


def test_superuser_can_change_a_periodic_task_interval(superuser_client: Client) -> None:
    task = PeriodicTask.objects.get(name="monitoring: drift check")
    thirty, _ = IntervalSchedule.objects.get_or_create(every=30, period="minutes")
    assert task.interval_id != thirty.pk
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"

    page = superuser_client.get(url)
    assert page.status_code == 200
    assert page.context["has_change_permission"]
    form = page.context["adminform"].form
    # Resubmit the form exactly as shown, with only the interval changed.
    data: dict[str, object] = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        if value is True:
            data[name] = "on"
        elif isinstance(value, datetime.datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.date(), value.time()
        else:
            data[name] = value
    data["interval"] = thirty.pk
    data["_save"] = "Save"

    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.interval_id == thirty.pk
    assert task.task == "monitoring.drift_check" and task.enabled


def test_periodic_tasks_are_listed_for_a_superuser(superuser_client: Client) -> None:
    response = superuser_client.get("/admin/django_celery_beat/periodictask/")
    assert response.status_code == 200
    names = {task.name for task in response.context["cl"].result_list}
    assert {"monitoring: drift check", "monitoring: freshness check"} <= names
