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

from models_registry.models import ActivationEvent, ModelVersion
from models_registry.services.activation import model_version_activate
from models_registry.services.training import model_train, training_config_resolve
from monitoring.services.replay import replay_run
from predictions.inference import model_cache
from predictions.models import PredictionRecord
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
