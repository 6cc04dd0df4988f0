"""End to end in a real browser: an operator logs in, activates a version from the admin with a
reason, rolls it back, and opens the dashboard to see charts with data in them.

Screenshots of the dashboard and the version page are saved under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from features.sources import get_candle_source
from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from monitoring.services.comparison import challenger_comparison
from monitoring.services.outcomes import outcome_backfill
from monitoring.services.replay import replay_run
from predictions.inference import load_model_version, model_cache
from predictions.models import PredictionRecord
from predictions.services import prediction_create
from tests.factories import SMALL_CONFIG, make_model, make_user, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "browser"


@pytest.fixture
def registry(settings):
    """Two real versions, v1 active, and a replayed autumn so the dashboard has data."""
    settings.DRIFT_MIN_SAMPLES = 20
    model_cache.clear()
    config = training_config_resolve(config_data=SMALL_CONFIG)
    _, first = model_train(config=config, source="command", activate=True)
    _, second = model_train(config=config.with_overrides(seed=11), source="command")
    replay_run(
        symbols=["SP500"],
        start=datetime.date(2018, 9, 1),
        end=datetime.date(2018, 12, 31),
        version=first,
    )
    yield first, second
    model_cache.clear()


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1366, max(900, min(int(height), 6000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 900)
    return path


def log_in(driver, base: str) -> None:
    driver.get(f"{base}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("operator")
    driver.find_element(By.NAME, "password").send_keys("pw-operator")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert driver.find_elements(By.CSS_SELECTOR, "#logout-form, a[href$='/logout/']"), (
        "not logged in"
    )


def confirm_with_reason(driver, reason: str) -> None:
    driver.find_element(By.NAME, "reason").send_keys(reason)
    driver.find_element(By.NAME, "_confirm").click()


def test_operator_activates_rolls_back_and_reads_the_dashboard(
    browser, live_server, operator, registry
) -> None:
    first, second = registry
    base = live_server.url
    log_in(browser, base)

    # Activate v2 from the version list, giving a reason.
    browser.get(f"{base}/admin/models_registry/modelversion/")
    row = browser.find_element(By.XPATH, f"//tr[.//a[normalize-space()='{second.label}']]")
    row.find_element(By.LINK_TEXT, "Activate").click()
    assert second.label in browser.page_source
    confirm_with_reason(browser, "higher validation AUC in the browser test")
    messages = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text.lower()
    assert second.label in messages and "active" in messages
    assert ModelVersion.objects.get(is_active=True) == second
    event = ActivationEvent.objects.order_by("-pk").first()
    assert event.reason == "higher validation AUC in the browser test"
    assert event.actor_name == "operator"

    # The version page shows what a promotion decision needs; keep a screenshot of it.
    browser.get(f"{base}/admin/models_registry/modelversion/{second.pk}/change/")
    page = browser.page_source
    for expected in ("always up", second.artifact_sha256, second.dataset["fingerprint"]):
        assert expected in page, expected
    shot = screenshot(browser, "version-page")
    assert shot.stat().st_size > 10_000

    # Roll back from the version page.
    browser.find_element(By.CSS_SELECTOR, "a.registry-rollback").click()
    confirm_with_reason(browser, "rolled back in the browser test")
    messages = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text.lower()
    assert first.label in messages
    assert ModelVersion.objects.get(is_active=True) == first
    assert ActivationEvent.objects.filter(
        action="rollback", reason="rolled back in the browser test"
    ).exists()

    # The dashboard draws charts with data in them.
    browser.get(f"{base}/dashboard/")
    assert "No data yet" not in browser.find_element(By.ID, "drift").text
    # Vega draws one path per series in a line-mark group, one path per point in a symbol group.
    lines = browser.find_elements(By.CSS_SELECTOR, "#drift svg g.mark-line path")
    assert lines, "no drift lines drawn"
    assert max(line.get_attribute("d").count("L") for line in lines) > 10
    points = browser.find_elements(By.CSS_SELECTOR, "#accuracy svg g.mark-symbol path")
    assert len(points) > 10
    activations = browser.find_element(By.ID, "activations").text
    assert "rolled back in the browser test" in activations
    assert "higher validation AUC in the browser test" in activations
    shot = screenshot(browser, "dashboard")
    assert shot.stat().st_size > 10_000


def test_staff_without_the_registry_permission_cannot_activate(
    browser, live_server, registry
) -> None:
    _, second = registry
    user = make_user("viewer", staff=True, registry=False)
    user.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("viewer")
    browser.find_element(By.NAME, "password").send_keys("pw-viewer")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    browser.get(f"{live_server.url}/admin/models_registry/modelversion/{second.pk}/change/")
    assert not browser.find_elements(By.CSS_SELECTOR, "a.registry-activate")
    browser.get(f"{live_server.url}/admin/models_registry/modelversion/{second.pk}/activate/")
    assert ModelVersion.objects.get(is_active=True) != second


def test_operator_picks_a_model_on_the_dashboard(browser, live_server, operator) -> None:
    """The selector lists the models; choosing one reloads every panel for it; an unknown name
    in the address is a message beside the selector, not an error page."""
    for name, symbol in (("spx", "SP500"), ("ndx", "NASDAQ")):
        version = make_version(model=make_model(name, symbols=[symbol]))
        model_version_activate(version=version.version, model=name, actor_name=f"setup {name}")
        PredictionRecord.objects.create(
            symbol=symbol,
            model_version=version,
            features={},
            prediction=0.6,
            confidence=0.2,
            as_of=datetime.datetime(2018, 12, 31, tzinfo=datetime.UTC),
            latency_ms=3.0,
        )
    base = live_server.url
    log_in(browser, base)
    browser.get(f"{base}/dashboard/")
    choice = Select(browser.find_element(By.ID, "model-choice"))
    assert [o.text for o in choice.options] == ["default", "ndx", "spx"]
    assert choice.first_selected_option.text == "default"

    choice.select_by_visible_text("ndx")
    browser.find_element(By.ID, "model-show").click()  # a plain GET form: no JavaScript
    WebDriverWait(browser, 10).until(lambda d: "model=ndx" in d.current_url)
    assert "Champion of ndx" in browser.find_element(By.ID, "active-version").text
    predictions = browser.find_element(By.ID, "predictions").text
    assert "NASDAQ" in predictions and "SP500" not in predictions
    assert Select(browser.find_element(By.ID, "model-choice")).first_selected_option.text == "ndx"
    assert "setup ndx" in browser.find_element(By.ID, "activations").text
    screenshot(browser, "dashboard-model-ndx")

    browser.get(f"{base}/dashboard/?model=nope")
    assert "Unknown model 'nope'." in browser.find_element(By.ID, "model-error").text
    assert browser.find_elements(By.ID, "model-choice")


# Requests scored by the champion and, in shadow, by the challenger: one per candle of early 2016,
# after the training window of SMALL_CONFIG.
SHADOWED_REQUESTS = 60


@pytest.fixture
def shadowed():
    """A champion and a challenger trained for real, SHADOWED_REQUESTS predictions through the
    serving path with the challenger scored in shadow, and their outcomes back-filled."""
    model_cache.clear()
    config = training_config_resolve(config_data=SMALL_CONFIG)
    _, champion = model_train(config=config, source="command", activate=True)
    other = training_config_resolve(config_data={**SMALL_CONFIG, "window": 20, "seed": 11})
    _, challenger = model_train(config=other, source="command", challenger=True)
    candles = get_candle_source().get_candles("SP500")
    first = int((candles["timestamp"] < datetime.datetime(2016, 1, 1, tzinfo=datetime.UTC)).sum())
    loaded = load_model_version(champion)
    for end in range(first + 1, first + 1 + SHADOWED_REQUESTS):
        prediction_create(
            symbol="SP500", candles=candles.iloc[:end], model=loaded, challengers=True
        )
    outcome_backfill(candles={"SP500": candles})
    yield champion, challenger
    model_cache.clear()


def test_operator_reads_the_champion_against_its_challenger(
    browser, live_server, operator, shadowed
) -> None:
    """The dashboard's champion-vs-challenger panel draws both charts and the verdict; the
    challenger's admin page shows the comparison beside its action buttons."""
    champion, challenger = shadowed
    challenger.refresh_from_db()
    assert challenger.is_challenger and not challenger.is_active
    shadows = PredictionRecord.objects.filter(role="challenger", model_version=challenger)
    assert shadows.filter(outcome__isnull=False).count() == SHADOWED_REQUESTS
    expected = challenger_comparison(challenger=challenger)
    assert expected["paired_count"] == SHADOWED_REQUESTS
    # 60 pairs are too few to tell these two apart: the panel must say how many more it needs.
    verdict = expected["verdict"]
    assert verdict == "undecided" and expected["rows_needed"] > 0

    base = live_server.url
    log_in(browser, base)
    browser.get(f"{base}/dashboard/?model=default")
    panel = browser.find_element(By.ID, "challengers")
    text = panel.text
    assert "No data yet" not in text and "No challenger" not in text
    assert "rolling accuracy" in text and "rolling log loss" in text
    assert f"champion (vs {challenger.label})" in text
    assert f"{verdict} on log loss, {SHADOWED_REQUESTS} pairs" in text
    assert f"about {expected['rows_needed']} more to decide" in text
    # Two charts side by side, each a challenger line and the champion's dashed line drawn
    # through the paired candles.
    lines = panel.find_elements(By.CSS_SELECTOR, "svg g.mark-line path")
    assert len(lines) >= 4, "fewer than two lines in each chart"
    assert sum(line.get_attribute("d").count("L") > 10 for line in lines) >= 4
    screenshot(browser, "dashboard-challengers")

    browser.get(f"{base}/admin/models_registry/modelversion/{challenger.pk}/change/")
    assert browser.find_elements(By.CSS_SELECTOR, "a.registry-activate")
    assert browser.find_elements(By.CSS_SELECTOR, "a.registry-challenger-remove")
    section = browser.find_element(By.ID, "section-challenger-comparison").text
    assert champion.label in section
    assert f"{verdict} over {SHADOWED_REQUESTS} paired predictions" in section
    for figure in ("log loss", "accuracy", "Brier"):
        assert figure in section, figure
    screenshot(browser, "version-page-challenger")

    # The champion's page has no comparison: it is nobody's challenger.
    browser.get(f"{base}/admin/models_registry/modelversion/{champion.pk}/change/")
    assert not browser.find_elements(By.ID, "section-challenger-comparison")
