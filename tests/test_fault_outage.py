"""A real database outage under gunicorn (issue 10, points 12 and 13).

Two gunicorn workers on a private PostgreSQL cluster (``initdb`` on a free port, never the
shared one). The cluster is stopped with requests in flight and started again: every request
answers a 503 in the error shape whose ``X-Request-ID`` is its ``details.request_id``,
``/metrics`` keeps answering with ``mlengine_database_up 0``, the server log gets a few lines
and no traceback, and predictions come back without restarting the app.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from django.conf import settings

from tests.factories import SMALL_CONFIG
from tests.faults.services import private_postgres


def manage(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_database_outage_under_gunicorn(gunicorn_factory, tmp_path: Path) -> None:
    with private_postgres() as cluster:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"CACHE_URL", "CELERY_BROKER_URL"}
        }
        env.update(
            {"DJANGO_SETTINGS_MODULE": "mlengine.settings.test", "DATABASE_URL": cluster.url}
        )
        config = tmp_path / "train.yaml"
        config.write_text(yaml.safe_dump(SMALL_CONFIG))
        manage("migrate", "--noinput", env=env)
        manage("train_model", "--config", str(config), "--activate", env=env)

        # One line per kind per minute: the whole outage falls in one interval.
        base = gunicorn_factory(
            workers=2, env={"DATABASE_URL": cluster.url, "LOG_RATE_LIMIT_SECONDS": "60"}
        )
        log = Path(settings.TEST_DIR) / f"gunicorn-{base.rsplit(':', 1)[1]}.log"
        session = requests.Session()
        for _ in range(20):  # both workers load the model
            assert session.get(f"{base}/predict", params={"symbol": "SP500"}, timeout=30).ok
        before = log.stat().st_size

        cluster.stop(mode="immediate")  # an outage: open connections cut
        answers = [
            session.get(f"{base}/predict", params={"symbol": "SP500"}, timeout=30)
            for _ in range(60)
        ]
        answers += [session.get(f"{base}/models", timeout=30) for _ in range(10)]
        scrapes = [session.get(f"{base}/metrics", timeout=30) for _ in range(5)]
        ready = session.get(f"{base}/health/ready", timeout=30)
        outage_log = log.read_bytes()[before:].decode(errors="replace")

        cluster.start()
        recovered = False
        for _ in range(100):  # a bound, not a timing: the app must recover on its own
            if session.get(f"{base}/predict", params={"symbol": "SP500"}, timeout=30).ok:
                recovered = True
                break
            time.sleep(0.1)

    for answer in answers:
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] in {"audit_unavailable", "database_unavailable"}
        assert answer.headers["X-Request-ID"] == error["details"]["request_id"]
    assert all(scrape.status_code == 200 for scrape in scrapes)
    assert "mlengine_database_up 0.0" in scrapes[-1].text
    assert re.search(r'mlengine_http_requests_total\{[^}]*status="503"', scrapes[-1].text)
    assert ready.status_code == 503
    assert "database" in ready.json()["error"]["details"]["failing"]

    # 76 failed requests on 2 workers: at most a line per kind of failure per worker (about a
    # dozen here; 4,000 lines and 384 tracebacks for an 8 s outage before), no traceback.
    problems = [
        line for line in outage_log.splitlines() if " ERROR " in line or " WARNING " in line
    ]
    assert "Traceback" not in outage_log, outage_log[-3000:]
    assert len(problems) <= 16, "\n".join(problems)
    assert recovered
