"""The monitoring dashboard: access, every card from real rows, empty states, charts, latency
buckets."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import requests
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from features.engineering import FEATURE_NAMES, PRICE_LEVEL_FEATURES
from models_registry.services.training import model_train, training_config_resolve
from monitoring.dashboard.accuracy import rolling_accuracy
from monitoring.dashboard.charts import (
    Bar,
    ReferenceLine,
    SafeSvg,
    Series,
    bar_chart,
    line_chart,
    line_layer,
    side_by_side,
)
from monitoring.dashboard.common import duration_text
from monitoring.services.replay import replay_run
from monitoring.timeseries import latency_bucket_choose, latency_timeseries
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_version

PATH_D = re.compile(r'<path[^>]*\sd="([^"]*)"')


@pytest.fixture
def staff_client(db) -> Client:
    User.objects.create_user("ops", password="pw-ops", is_staff=True)
    client = Client()
    client.force_login(User.objects.get(username="ops"))
    return client


@pytest.fixture
def populated(db, settings):
    """A trained, active version; a replay of autumn 2018 (predictions, outcomes, drift checks);
    and live /predict requests, some moved three hours back so latency spans two buckets."""
    # 82 trading days give at most 82 distinct candles: let the drift checks compute PSI.
    settings.DRIFT_MIN_SAMPLES = 20
    _, version = model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    summary = replay_run(
        symbols=["SP500"], start=date(2018, 9, 1), end=date(2018, 12, 31), version=version
    )
    client = Client()
    for _ in range(6):
        assert client.get("/predict", {"symbol": "SP500"}).status_code == 200
    live = list(
        PredictionRecord.objects.filter(is_replay=False).order_by("id").values_list("id", flat=True)
    )
    PredictionRecord.objects.filter(id__in=live[:3]).update(
        created_at=timezone.now() - timedelta(hours=3)
    )
    return version, summary


def section(html: str, anchor: str) -> str:
    match = re.search(rf'<section[^>]*\bid="{anchor}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"no section #{anchor}"
    return match.group(1)


def marks(markup: str, role: str) -> list[str]:
    """The drawn items of one kind in the SVG, by the ARIA role Vega gives each: "line mark"
    (one per series), "circle" (a point), "rule mark", "bar", "tick", "text mark"."""
    return re.findall(rf'<(?:path|line|text)\b[^>]*\baria-roledescription="{role}"[^>]*>', markup)


def line_runs(markup: str) -> list[list[list[tuple[float, float]]]]:
    """Per line series (one path each), its unbroken runs of (x, y) pixel points."""
    series = []
    for item in marks(markup, "line mark"):
        d = PATH_D.search(item)
        assert d, item
        runs = [
            [tuple(float(v) for v in pair.split(",")) for pair in run.rstrip("Z").split("L")]
            for run in d.group(1).split("M")
            if run
        ]
        series.append(runs)
    return series


def polyline_points(markup: str) -> list[list[tuple[float, float]]]:
    """Every unbroken run of every line series."""
    return [run for series in line_runs(markup) for run in series]


def legend_labels(markup: str) -> list[str]:
    return re.findall(
        r'<g class="mark-text role-legend-label"[^>]*><text[^>]*>([^<]*)</text>', markup
    )


# --- access ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_user_is_sent_to_the_admin_login() -> None:
    response = Client().get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "next=/dashboard/" in response["Location"]


@pytest.mark.django_db
def test_logged_in_user_without_staff_status_is_sent_to_the_admin_login() -> None:
    User.objects.create_user("analyst", password="pw-analyst", is_staff=False)
    client = Client()
    client.force_login(User.objects.get(username="analyst"))
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_user_sees_the_dashboard(staff_client: Client) -> None:
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]  # live figures are never cached
    assert "ML Engine · Monitoring" in response.content.decode()


# --- every card from real rows -----------------------------------------------------------------


def test_dashboard_draws_every_card_from_real_rows(staff_client: Client, populated) -> None:
    version, summary = populated
    html = staff_client.get("/dashboard/").content.decode()
    assert "No data yet" not in html

    active = section(html, "active-version")
    assert version.label in active
    assert "validation accuracy" in active and "always-up" in active
    assert len(marks(active, "bar")) == 1  # one bar per ready version
    assert len(marks(active, "tick")) == 1  # its always-up baseline

    assert re.search(r'badge-(ok|degraded)">(ok|degraded)<', section(html, "health"))
    freshness = section(html, "freshness")
    assert "SP500" in freshness and "time since last prediction" in freshness

    drift = section(html, "drift")
    inputs = [n for n in FEATURE_NAMES if n not in PRICE_LEVEL_FEATURES]
    assert len(line_runs(drift)) == len(inputs)  # one line per input feature
    assert max(len(line) for line in polyline_points(drift)) > 20
    assert legend_labels(drift) == inputs  # in the canonical order, each with its colour
    assert "threshold 0.2" in drift
    assert len(marks(drift, "rule mark")) == 1  # the features share one threshold
    assert f"{summary.drift_checks} replayed checks" in drift
    levels = section(html, "drift-levels")
    assert len(line_runs(levels)) == len(PRICE_LEVEL_FEATURES)  # close / moving_average

    latency = section(html, "latency")
    assert [len(line) for line in polyline_points(latency)] == [2, 2]  # p50 and p99, 2 buckets
    assert legend_labels(latency) == ["p50", "p99"]
    assert len(marks(latency, "circle")) == 4  # few points: each has a marker
    assert "6 requests" in latency

    accuracy = section(html, "accuracy")
    rolling = line_runs(accuracy)
    assert len(rolling) == 1 and max(len(run) for run in rolling[0]) > 10
    assert len(marks(accuracy, "rule mark")) == 1  # the validation accuracy
    assert f"{version.label} validation {version.validation_accuracy:.3f}" in accuracy

    predictions = section(html, "predictions")
    assert predictions.count("<tr>") == 1 + 20  # header + 20 newest
    assert "SP500" in predictions

    activations = section(html, "activations")
    assert f"none → {version.label}" in activations


def test_dashboard_loads_nothing_from_the_network(staff_client: Client, populated) -> None:
    html = staff_client.get("/dashboard/").content.decode()
    assert "http://" not in html and "https://" not in html
    assert not re.search(r'(src|href)="//', html)
    assert "<script" not in html
    assert '<link rel="stylesheet"' not in html
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.S)
    assert len(svgs) == 5  # versions, drift (inputs, levels), latency, accuracy
    for svg in svgs:
        assert not re.search(r"href|url\(|@import|<image|<foreignObject", svg)


def test_gunicorn_worker_draws_the_same_charts_as_this_process(gunicorn_factory) -> None:
    """vl-convert runs in the forked web worker, and its SVG is the same bit for bit."""
    version = make_version(is_active=True)
    make_version()  # a second ready version: two bars
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    _latency_rows(version, start, [1.0, 2.0, 3.0])
    _latency_rows(version, start + timedelta(hours=1), [4.0, 5.0])
    User.objects.create_user("ops", password="pw-ops", is_staff=True)
    client = Client()
    client.force_login(User.objects.get(username="ops"))
    base = gunicorn_factory(workers=1)

    response = requests.get(
        f"{base}/dashboard/", cookies={"sessionid": client.cookies["sessionid"].value}, timeout=60
    )

    assert response.status_code == 200
    served = response.text
    assert len(line_runs(section(served, "latency"))) == 2
    assert len(marks(section(served, "active-version"), "bar")) == 2
    here = client.get("/dashboard/").content.decode()
    for anchor in ("latency", "active-version"):
        assert re.findall(r"<svg.*?</svg>", section(served, anchor), re.S) == re.findall(
            r"<svg.*?</svg>", section(here, anchor), re.S
        )


# --- empty database ----------------------------------------------------------------------------


def test_empty_database_says_no_data_yet_in_every_card(staff_client: Client) -> None:
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    for anchor, hint in (
        ("active-version", "manage.py train_model --activate"),
        ("drift", "manage.py replay"),
        ("latency", "GET /predict?symbol=SP500"),
        ("accuracy", "manage.py replay"),
        ("predictions", "GET /predict?symbol=SP500"),
        ("activations", "manage.py train_model --activate"),
    ):
        card = section(html, anchor)
        assert "No data yet" in card, anchor
        assert hint in card, anchor
    # No chart at all rather than a broken one, and no Python None leaking into the page.
    assert "<svg" not in html
    assert ">None<" not in html and not re.search(r"\bnan\b", html, re.IGNORECASE)
    assert "http://" not in html and "https://" not in html


def test_drift_checks_without_psi_say_so_instead_of_drawing_nothing(
    staff_client: Client, settings
) -> None:
    settings.DRIFT_MIN_SAMPLES = 100_000  # every check is insufficient_data
    _, version = model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    replay_run(symbols=["SP500"], start=date(2018, 9, 1), end=date(2018, 9, 30), version=version)
    drift = section(staff_client.get("/dashboard/").content.decode(), "drift")
    assert "No data yet" in drift and "DRIFT_MIN_SAMPLES (100000)" in drift
    assert "<polyline" not in drift
    assert "insufficient_data" in drift  # the latest verdict is still shown


# --- latency over time -------------------------------------------------------------------------


def _latency_rows(version, start: datetime, latencies: list[float], *, replay: bool = False):
    PredictionRecord.objects.bulk_create(
        PredictionRecord(
            request_id=uuid.uuid4(),
            created_at=start + timedelta(seconds=i),
            event_time=start + timedelta(seconds=i),
            is_replay=replay,
            symbol="SP500",
            model_version=version,
            features={},
            prediction=0.5,
            confidence=0.0,
            as_of=start,
            latency_ms=latency,
        )
        for i, latency in enumerate(latencies)
    )


@pytest.mark.django_db
def test_latency_timeseries_matches_independent_percentiles_per_hour() -> None:
    version = make_version(is_active=True)
    rng = np.random.default_rng(3)
    base = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    hours = {
        base + timedelta(hours=h, minutes=5): rng.gamma(2.0, 2.0, 40).round(3) for h in (0, 1, 4)
    }
    for start, values in hours.items():
        _latency_rows(version, start, values.tolist())
    _latency_rows(version, base + timedelta(minutes=30), [5000.0] * 30, replay=True)

    hourly = latency_timeseries()  # 4 h of data is too long for 180 minute buckets

    assert hourly["bucket"] == "hour"
    assert hourly["count"] == 120  # replays never count
    starts = [datetime.fromisoformat(p["start"]) for p in hourly["points"]]
    assert starts == [base, base + timedelta(hours=1), base + timedelta(hours=4)]
    for point, values in zip(hourly["points"], hours.values(), strict=True):
        p50, p99 = np.percentile(values, [50, 99], method="linear")
        assert point["count"] == 40
        assert point["p50_ms"] == pytest.approx(p50, abs=1e-3)
        assert point["p99_ms"] == pytest.approx(p99, abs=1e-3)
    by_minute = latency_timeseries(max_buckets=1000)
    assert by_minute["bucket"] == "minute"
    assert [p["count"] for p in by_minute["points"]] == [40, 40, 40]  # 40 rows within a minute


@pytest.mark.django_db
def test_latency_timeseries_respects_the_window_and_is_empty_without_rows() -> None:
    assert latency_timeseries()["points"] == [] and latency_timeseries()["bucket"] is None
    version = make_version(is_active=True)
    old = datetime(2026, 1, 1, tzinfo=UTC)
    _latency_rows(version, old, [1.0, 2.0])
    _latency_rows(version, old + timedelta(days=30), [10.0, 20.0, 30.0])
    recent = latency_timeseries(since=old + timedelta(days=1))
    assert recent["count"] == 3 and len(recent["points"]) == 1
    assert recent["points"][0]["p50_ms"] == 20.0


def test_bucket_is_the_finest_that_fits() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert latency_bucket_choose(first=start, last=start)[0] == "minute"
    assert latency_bucket_choose(first=start, last=start + timedelta(hours=2))[0] == "minute"
    assert latency_bucket_choose(first=start, last=start + timedelta(days=7))[0] == "hour"
    assert latency_bucket_choose(first=start, last=start + timedelta(days=60))[0] == "day"
    assert latency_bucket_choose(first=start, last=start + timedelta(days=3000))[0] == "month"


# --- dashboard helpers -------------------------------------------------------------------------


def test_rolling_accuracy_weights_days_by_their_outcomes() -> None:
    days = [
        {"day": "2018-09-03", "count": 10, "accuracy": 1.0},
        {"day": "2018-09-04", "count": 10, "accuracy": 0.0},
        {"day": "2018-09-05", "count": 30, "accuracy": 0.5},
    ]
    result = rolling_accuracy(days, min_outcomes=20)
    # Day 1 alone has too few outcomes; day 2 pools days 1-2; day 3 has enough on its own.
    assert result == [(date(2018, 9, 4), 0.5), (date(2018, 9, 5), 0.5)]
    few = rolling_accuracy(days[:1], min_outcomes=20)
    assert few == [(date(2018, 9, 3), 1.0)]  # fewer outcomes in all: report them all once


def test_duration_text_reads_naturally() -> None:
    assert duration_text(None) == "—"
    assert duration_text(42) == "42 s"
    assert duration_text(12 * 60) == "12 min"
    assert duration_text(3 * 3600 + 300) == "3 h 5 min"
    assert duration_text(4 * 86400 + 7200) == "4 d 2 h"


# --- charts ------------------------------------------------------------------------------------

DAYS = [date(2026, 3, 2) + timedelta(days=i) for i in range(10)]


def test_line_chart_draws_each_series_its_points_and_references() -> None:
    svg = line_chart(
        [
            Series("ma_gap", [(d, 0.01 * i) for i, d in enumerate(DAYS)]),
            Series("momentum", [(d, 0.3 - 0.02 * i) for i, d in enumerate(DAYS[:6])]),
            Series("per day", [(d, 0.1) for d in DAYS[:3]], style="points", faint=True),
        ],
        title="drift",
        references=[ReferenceLine(0.2, "threshold 0.2"), ReferenceLine(0.25, "other 0.25")],
    )
    assert svg is not None
    assert [[len(run) for run in runs] for runs in line_runs(svg)] == [[10], [6]]
    # Few points: every point of a line carries a marker, and the point series its own.
    assert len(marks(svg, "circle")) == 10 + 6 + 3
    assert len(marks(svg, "rule mark")) == 2
    assert ">threshold 0.2</text>" in svg and ">other 0.25</text>" in svg
    assert legend_labels(svg) == ["ma_gap", "momentum", "per day"]
    assert svg.startswith('<svg class="chart"') and "<title>drift</title>" in svg


def test_line_chart_scales_linearly_with_larger_values_higher() -> None:
    svg = line_chart([Series("s", [(0, 0.0), (5, 5.0), (10, 10.0)])], title="t", legend=False)
    [[[first, middle, last]]] = line_runs(svg)
    assert first[0] < middle[0] < last[0]
    assert middle[0] == pytest.approx((first[0] + last[0]) / 2, abs=0.1)
    assert middle[1] == pytest.approx((first[1] + last[1]) / 2, abs=0.1)
    assert last[1] < first[1]  # SVG y grows downwards
    assert legend_labels(svg) == []


def test_line_chart_includes_the_bounds_it_is_given() -> None:
    svg = line_chart(
        [Series("acc", [(d, 0.5 + 0.01 * i) for i, d in enumerate(DAYS)])],
        title="t",
        y_min=0.0,
        y_max=1.0,
    )
    labels = re.findall(r'<g class="mark-text role-axis-label"[^>]*>(.*?)</g>', svg, re.S)
    y_labels = re.findall(r">([\d.]+)</text>", labels[-1])
    assert y_labels[0] == "0.0" and y_labels[-1] == "1.0"


def test_line_chart_breaks_the_line_at_missing_values() -> None:
    svg = line_chart(
        [Series("s", [(0, 1.0), (1, None), (2, math.nan), (3, 2.0), (4, 3.0), (5, math.inf)])],
        title="t",
    )
    [runs] = line_runs(svg)
    assert [len(run) for run in runs] == [1, 2]  # x=0 alone, then x=3..4
    assert len(marks(svg, "circle")) == 3
    assert "nan" not in svg.lower() and "infinity" not in svg.lower()


def test_charts_with_nothing_to_draw_are_none() -> None:
    for series in ([], [Series("s", [])], [Series("s", [(0, None), (1, math.nan)])]):
        assert line_chart(series, title="t") is None
    assert bar_chart([Bar("v1", None)], title="t") is None
    assert side_by_side([None, None], title="t") is None


def test_bar_chart_draws_a_bar_and_a_tick_per_version() -> None:
    svg = bar_chart(
        [Bar("v1", 0.51, marker=0.5), Bar("v2", 0.55, marker=0.52), Bar("v3", 0.6)],
        title="validation",
        value_format=".2f",
    )
    bars = marks(svg, "bar")
    assert len(bars) == 3 and len(marks(svg, "tick")) == 2
    assert ">0.51</text>" in svg and ">0.55</text>" in svg and ">0.60</text>" in svg
    assert ">v1</text>" in svg and ">v3</text>" in svg
    heights = [float(re.search(r"v(-?[\d.]+)h", bar).group(1)) for bar in bars]
    assert abs(heights[0]) < abs(heights[1]) < abs(heights[2])  # drawn from zero


def test_side_by_side_draws_both_charts_in_one_svg() -> None:
    champion = line_layer([Series("champion", [(d, 0.5) for d in DAYS])], heading="v3 <champion>")
    challenger = line_layer(
        [Series("challenger", [(d, 0.6) for d in DAYS[:4]], color="#e15759")], heading="v4"
    )
    svg = side_by_side([champion, challenger], title="champion against challenger")
    assert svg.count("<svg") == 1
    assert [[len(run) for run in runs] for runs in line_runs(svg)] == [[10], [4]]
    assert 'stroke="#e15759"' in svg
    assert ">v3 &lt;champion&gt;</text>" in svg and ">v4</text>" in svg
    assert legend_labels(svg) == ["champion", "challenger"]


def test_chart_text_is_escaped_and_colors_cannot_inject_markup() -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    svg = line_chart(
        [Series(evil, [(0, 1.0), (1, 2.0)], color='red" onload="alert(1)')],
        title=evil,
        description=evil,
        y_label=evil,
        x_label=evil,
        references=[ReferenceLine(1.5, evil, color="</svg><script>")],
    )
    bars = bar_chart([Bar(evil, 0.5, marker=0.4, color='" onclick="x')], title=evil)
    for markup in (svg, bars):
        assert "<script" not in markup and "<img" not in markup
        assert "&lt;script&gt;" in markup
        assert "onload" not in markup and "onclick" not in markup
        assert markup.count("<svg") == 1 and markup.count("</svg>") == 1


def test_charts_are_the_same_for_the_same_data() -> None:
    def draw() -> str:
        return line_chart(
            [Series("p50", [(datetime(2026, 3, 2, h, tzinfo=UTC), h * 1.5) for h in range(12)])],
            title="t",
            references=[ReferenceLine(9.0, "slo")],
        )

    assert draw() == draw()


def test_charts_reference_no_url() -> None:
    svg = line_chart([Series("s", [(d, 1.0) for d in DAYS])], title="t")
    assert not re.search(r"https?:|href|url\(|@import|<image|xmlns", svg)


def test_safe_svg_is_inserted_unescaped_by_django_templates() -> None:
    svg = line_chart([Series("a&b", [(0, 1.0), (1, 2.0)])], title="t")
    assert isinstance(svg, SafeSvg)
    rendered = Template("{{ chart }}").render(Context({"chart": svg}))
    assert rendered.startswith("<svg") and "a&amp;b" in rendered
    assert Template("{{ text }}").render(Context({"text": "<svg>"})) == "&lt;svg&gt;"
