"""The monitoring dashboard: access, every card from real rows, empty states, charts, latency
buckets."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.utils import timezone

from models_registry.services.training import model_train, training_config_resolve
from monitoring.dashboard.accuracy import rolling_accuracy
from monitoring.dashboard.charts import (
    Bar,
    ReferenceLine,
    SafeSvg,
    Series,
    bar_chart,
    line_chart,
    nice_ticks,
    time_ticks,
)
from monitoring.dashboard.common import duration_text
from monitoring.services.replay import replay_run
from monitoring.timeseries import latency_bucket_choose, latency_timeseries
from predictions.models import PredictionRecord
from tests.factories import SMALL_CONFIG, make_version

POINTS = re.compile(r'<polyline[^>]*\spoints="([^"]+)"')


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


def polyline_points(markup: str) -> list[list[tuple[float, float]]]:
    return [
        [tuple(float(v) for v in pair.split(",")) for pair in points.split()]
        for points in POINTS.findall(markup)
    ]


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
    assert "<rect" in active  # the per-version bar chart

    assert re.search(r'badge-(ok|degraded)">(ok|degraded)<', section(html, "health"))
    freshness = section(html, "freshness")
    assert "SP500" in freshness and "time since last prediction" in freshness

    drift = section(html, "drift")
    lines = polyline_points(drift)
    assert len(lines) >= 5  # one line per input feature (gaps may split one into several)
    assert max(len(line) for line in lines) > 20
    for name in ("simple_return", "ma_gap", "rolling_volatility", "momentum"):
        assert f">{name}</text>" in drift  # legend entry
    assert "threshold 0.2" in drift
    assert f"{summary.drift_checks} replayed checks" in drift
    assert polyline_points(section(html, "drift-levels"))  # close / moving_average

    latency = section(html, "latency")
    assert [len(line) for line in polyline_points(latency)] == [2, 2]  # p50 and p99, 2 buckets
    assert ">p50</text>" in latency and ">p99</text>" in latency
    assert "6 requests" in latency

    accuracy = section(html, "accuracy")
    rolling = polyline_points(accuracy)
    assert rolling and len(rolling[0]) > 10
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


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 0.93) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    ticks = nice_ticks(0.0123, 0.0191, max_ticks=5)
    assert ticks[0] <= 0.0123 and ticks[-1] >= 0.0191 and len(ticks) <= 6
    flat = nice_ticks(5, 5)
    assert flat[0] < 5 < flat[-1]
    with pytest.raises(ValueError):
        nice_ticks(0, math.nan)


def test_time_ticks_fall_on_midnights_for_a_few_days() -> None:
    low = datetime(2026, 3, 1, 7, tzinfo=UTC).timestamp()
    high = datetime(2026, 3, 4, 20, tzinfo=UTC).timestamp()
    ticks, fmt = time_ticks(low, high, max_ticks=6)
    moments = [datetime.fromtimestamp(t, tz=UTC) for t in ticks]
    assert moments == [datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4)]
    assert fmt == "%b %d"
    months, month_fmt = time_ticks(
        datetime(2018, 1, 15, tzinfo=UTC).timestamp(),
        datetime(2019, 12, 1, tzinfo=UTC).timestamp(),
        max_ticks=6,
    )
    assert all(datetime.fromtimestamp(t, tz=UTC).day == 1 for t in months)
    assert month_fmt == "%b %Y"


def test_line_chart_scales_linearly_with_larger_values_higher() -> None:
    svg = line_chart([Series("s", [(0, 0.0), (5, 5.0), (10, 10.0)])], title="t", legend=False)
    [[first, middle, last]] = polyline_points(svg)
    assert first[0] < middle[0] < last[0]
    assert middle[0] == pytest.approx((first[0] + last[0]) / 2, abs=0.1)
    assert middle[1] == pytest.approx((first[1] + last[1]) / 2, abs=0.1)
    assert last[1] < first[1]  # SVG y grows downwards
    for label in (">0<", ">10<"):  # y ticks at the domain's ends
        assert label in svg


def test_line_chart_draws_a_reference_line_and_a_legend() -> None:
    svg = line_chart(
        [Series("ma_gap", [(0, 0.1), (1, 0.3)]), Series("momentum", [(0, 0.05), (1, 0.02)])],
        title="drift",
        references=[ReferenceLine(0.2, "threshold 0.2")],
    )
    assert "stroke-dasharray" in svg and ">threshold 0.2</text>" in svg
    assert ">ma_gap</text>" in svg and ">momentum</text>" in svg
    assert svg.count("<polyline") == 2
    assert "<title>drift</title>" in svg


def test_line_chart_with_no_data_says_so_instead_of_plotting() -> None:
    for series in ([], [Series("s", [])], [Series("s", [(0, None), (1, math.nan)])]):
        svg = line_chart(series, title="t", empty_message="No data yet — wait")
        assert "No data yet — wait" in svg
        assert "<polyline" not in svg and "<circle" not in svg
    empty_bars = bar_chart([Bar("v1", None)], title="t")
    assert "No data yet" in empty_bars and '<rect x="0.5"' in empty_bars


def test_line_chart_single_point_is_a_marker_with_a_labelled_axis() -> None:
    moment = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    svg = line_chart([Series("p50", [(moment, 3.5)])], title="t")
    assert "<polyline" not in svg
    assert svg.count("<circle") == 1  # the point (a line series has a line swatch)
    assert "p50 · 2026-03-02 12:30: 3.5" in svg  # hover text
    assert re.search(r">\w{3} \d{2} \d{2}:\d{2}<|>\d{2}:\d{2}<", svg)  # an x tick label


def test_line_chart_skips_none_and_nan_as_gaps() -> None:
    svg = line_chart(
        [Series("s", [(0, 1.0), (1, None), (2, math.nan), (3, 2.0), (4, 3.0), (5, math.inf)])],
        title="t",
    )
    lines = polyline_points(svg)
    assert len(lines) == 1 and len(lines[0]) == 2  # x=3..4; x=0 stands alone as a marker
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert "s · 0: 1" in svg


def test_chart_text_is_escaped_and_colors_cannot_inject_markup() -> None:
    evil = '<script>alert("x")</script>'
    svg = line_chart(
        [Series(evil, [(0, 1.0), (1, 2.0)], color='red" onload="alert(1)')],
        title=evil,
        y_label=evil,
        references=[ReferenceLine(1.5, evil)],
    )
    bars = bar_chart([Bar(evil, 0.5, marker=0.4, marker_label=evil)], title=evil)
    for markup in (svg, bars):
        assert "<script" not in markup
        assert "&lt;script&gt;" in markup
        assert "onload" not in markup


def test_safe_svg_is_inserted_unescaped_by_django_templates() -> None:
    svg = line_chart([Series("a&b", [(0, 1.0), (1, 2.0)])], title="t")
    assert isinstance(svg, SafeSvg)
    rendered = Template("{{ chart }}").render(Context({"chart": svg}))
    assert rendered.startswith("<svg") and "a&amp;b" in rendered
    assert Template("{{ text }}").render(Context({"text": "<svg>"})) == "&lt;svg&gt;"


def test_bar_chart_prints_values_and_marker_ticks() -> None:
    svg = bar_chart(
        [Bar("v1", 0.51, marker=0.5), Bar("v2", 0.55, marker=0.52)],
        title="validation",
        value_format="{:.2f}",
    )
    assert svg.count("<rect") == 2
    assert ">0.51</text>" in svg and ">0.55</text>" in svg
    assert ">v1</text>" in svg and ">v2</text>" in svg
    heights = [float(h) for h in re.findall(r'<rect[^>]*height="([\d.]+)"', svg)]
    assert heights[1] > heights[0]  # 0.55 is taller than 0.51, both drawn from zero
