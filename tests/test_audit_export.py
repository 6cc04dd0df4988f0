"""The JSONL audit export: complete, exactly once, in id order, hash-chained, verifiable, and
retention that never deletes a row the export does not vouch for."""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from conftest import test_database_url
from models_registry.services.training import model_train, training_config_resolve
from predictions.audit import export as export_module
from predictions.audit.chain import GENESIS_HASH, chain_hash, parse_line
from predictions.audit.export import audit_export_run
from predictions.audit.retention import prediction_retention_run
from predictions.audit.verify import audit_verify
from predictions.errors import AuditExportFailed, RetentionRefused
from predictions.models import AuditExportState, AuditSeal, PredictionRecord
from predictions.selectors import RECORD_FIELDS, audit_export_state
from predictions.serializers import audit_fields
from predictions.tasks import audit_export_task, prediction_retention_task
from tests.factories import SMALL_CONFIG, make_version

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
BASE_ID = 1_000_000  # explicit ids, far from any sequence, so a test chooses its own gaps


@pytest.fixture
def audit_file(settings, tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "predictions.jsonl"
    settings.AUDIT_LOG_FILE = str(path)
    return path


@pytest.fixture
def version():
    return make_version(is_active=True)


def make_rows(
    version: Any, offsets: list[int], *, age: datetime.timedelta = datetime.timedelta(minutes=5)
) -> list[PredictionRecord]:
    """Committed rows with ids ``BASE_ID + offset``, created ``age`` ago."""
    created = timezone.now() - age
    rows = [
        PredictionRecord(
            id=BASE_ID + offset,
            request_id=uuid.uuid4(),
            created_at=created,
            event_time=created,
            symbol="SP500",
            model_version=version,
            features={"close": 2506.85 + offset, "simple_return": 0.1 / 3, "momentum": None},
            prediction=0.53,
            confidence=0.06,
            as_of=datetime.datetime(2018, 12, 31, tzinfo=datetime.UTC),
            latency_ms=3.1,
            timings={"model": 0.1},
        )
        for offset in offsets
    ]
    return PredictionRecord.objects.bulk_create(rows)


def file_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def export_failures() -> float:
    """The failure count as operators see it: summed over processes in /metrics."""
    text = Client().get("/metrics").content.decode()
    match = re.search(r"^mlengine_audit_export_failures_total ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


# --- 14: complete, exactly once, ordered -------------------------------------------------------


def test_export_writes_each_committed_row_once_in_id_order_with_a_chain(
    version, audit_file: Path
) -> None:
    rows = make_rows(version, [1, 2, 3])
    assert audit_export_run().exported == 3
    assert audit_export_run().exported == 0  # a second run finds nothing new
    lines = file_lines(audit_file)
    assert [line["id"] for line in lines] == [row.id for row in rows]
    assert [line["request_id"] for line in lines] == [str(row.request_id) for row in rows]
    previous = GENESIS_HASH
    for line in lines:
        body = {k: v for k, v in line.items() if k not in ("prev_hash", "hash")}
        assert line["prev_hash"] == previous
        assert line["hash"] == chain_hash(previous, body)
        previous = line["hash"]
    state = AuditExportState.objects.get()
    assert (state.last_id, state.last_hash, state.exported_rows) == (rows[-1].id, previous, 3)
    # The line is the one canonical representation of the row, nothing hand-kept beside it.
    stored = PredictionRecord.objects.filter(id=rows[0].id).values(*RECORD_FIELDS)[0]
    assert {k: v for k, v in lines[0].items() if k not in ("prev_hash", "hash")} == (
        audit_fields(stored)
    )


def test_a_run_that_died_after_writing_is_not_written_twice(
    version, audit_file: Path, monkeypatch
) -> None:
    make_rows(version, [1, 2, 3, 4, 5])
    real_append = export_module.append_durably

    def append_then_lose_the_database(descriptor: int, data: bytes) -> None:
        real_append(descriptor, data)  # the lines are on disk...
        raise OperationalError("server closed the connection")  # ...the progress never saved

    monkeypatch.setattr(export_module, "append_durably", append_then_lose_the_database)
    with pytest.raises(AuditExportFailed):
        audit_export_run()
    assert len(file_lines(audit_file)) == 5
    assert audit_export_state().last_id == 0  # the progress was rolled back
    monkeypatch.setattr(export_module, "append_durably", real_append)

    result = audit_export_run()
    assert (result.exported, result.adopted) == (0, 5)
    make_rows(version, [6, 7])
    assert audit_export_run().exported == 2
    ids = [line["id"] for line in file_lines(audit_file)]
    assert ids == [BASE_ID + n for n in range(1, 8)]  # each row exactly once
    assert audit_verify().ok


def test_a_torn_last_line_from_a_crash_is_cut_and_rewritten(version, audit_file: Path) -> None:
    make_rows(version, [1, 2])
    audit_export_run()
    with audit_file.open("ab") as handle:
        handle.write(b'{"as_of":"2018-12-31T00:00:00+00:00","confid')  # killed mid-write
    make_rows(version, [3])
    assert audit_export_run().exported == 1
    assert [line["id"] for line in file_lines(audit_file)] == [BASE_ID + n for n in (1, 2, 3)]
    assert audit_verify().ok


def test_an_unwritable_file_fails_loudly_and_loses_nothing(
    version, settings, tmp_path: Path, caplog
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings.AUDIT_LOG_FILE = str(blocker / "predictions.jsonl")
    make_rows(version, [1, 2, 3])
    before = export_failures()
    with caplog.at_level(logging.ERROR), pytest.raises(AuditExportFailed):
        audit_export_run()
    assert export_failures() == before + 1
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "audit export" in errors[0].getMessage()
    assert errors[0].exc_info is None  # one line, no traceback
    assert PredictionRecord.objects.count() == 3  # the database keeps them
    # The next run, once the file can be written, exports every row.
    settings.AUDIT_LOG_FILE = str(tmp_path / "fixed" / "predictions.jsonl")
    assert audit_export_run().exported == 3
    assert AuditExportState.objects.get().last_error == ""


def test_a_lost_file_stops_the_export_until_it_is_rebuilt(version, audit_file: Path) -> None:
    make_rows(version, [1, 2, 3])
    audit_export_run()
    original = audit_file.read_bytes()
    audit_file.unlink()
    make_rows(version, [4])
    with pytest.raises(AuditExportFailed, match="lost or truncated"):
        audit_export_run()
    assert not file_lines(audit_file)  # nothing written on top of the loss
    call_command("audit_export", output=str(audit_file))  # the rebuild from the database
    assert audit_file.read_bytes() == original  # the very same lines and hashes
    assert audit_export_run().exported == 1
    assert [line["id"] for line in file_lines(audit_file)] == [BASE_ID + n for n in (1, 2, 3, 4)]


def test_a_replaced_file_is_refused(version, audit_file: Path) -> None:
    make_rows(version, [1, 2, 3])
    audit_export_run()
    audit_file.write_text(audit_file.read_text().splitlines(keepends=True)[0])  # truncated
    with pytest.raises(AuditExportFailed, match="truncated or replaced"):
        audit_export_run()


def test_a_pre_export_audit_file_is_moved_aside(version, audit_file: Path) -> None:
    audit_file.parent.mkdir(parents=True)
    audit_file.write_text('{"request_id": "old", "prediction": 0.5}\n')
    make_rows(version, [1])
    assert audit_export_run().exported == 1
    assert [line["id"] for line in file_lines(audit_file)] == [BASE_ID + 1]
    (legacy,) = audit_file.parent.glob("predictions.jsonl.legacy-*")
    assert "old" in legacy.read_text()


def test_a_gap_in_the_ids_is_waited_for_until_it_is_older_than_the_lag(
    version, audit_file: Path
) -> None:
    """Commit order is not id order: id 3 may commit after 4. The export stops at the gap
    while it is young, so 3 is exported, in order, once it commits."""
    recent = datetime.timedelta(seconds=1)
    make_rows(version, [1, 2])
    make_rows(version, [4], age=recent)  # 3 still in flight in another worker
    result = audit_export_run(lag_seconds=30)
    assert (result.exported, result.waiting_on_gap) == (2, True)
    make_rows(version, [3], age=recent)  # it commits
    assert audit_export_run(lag_seconds=30).exported == 2
    assert [line["id"] for line in file_lines(audit_file)] == [BASE_ID + n for n in (1, 2, 3, 4)]
    # A rolled-back insert leaves a gap for good: once older than the lag it is passed.
    make_rows(version, [6], age=datetime.timedelta(seconds=60))
    assert audit_export_run(lag_seconds=30).exported == 1
    # The next id after the last exported one needs no wait at all.
    make_rows(version, [7], age=datetime.timedelta(0))
    assert audit_export_run(lag_seconds=30).exported == 1


def test_audit_export_command_waits_out_the_lag_of_a_gap(
    version, audit_file: Path, settings
) -> None:
    settings.AUDIT_EXPORT_LAG = 0.5
    make_rows(version, [1])
    make_rows(version, [3], age=datetime.timedelta(0))
    call_command("audit_export", stdout=open(os.devnull, "w"))  # noqa: SIM115, PTH123
    assert [line["id"] for line in file_lines(audit_file)] == [BASE_ID + 1, BASE_ID + 3]


def test_range_export_rebuilds_a_range_with_the_live_chain(
    version, audit_file: Path, tmp_path: Path
) -> None:
    make_rows(version, [1, 2, 3, 4, 5])
    audit_export_run()
    live = audit_file.read_text().splitlines(keepends=True)
    out = tmp_path / "range.jsonl"
    call_command(
        "audit_export", from_id=BASE_ID + 2, to_id=BASE_ID + 4, output=str(out), stdout=sys.stderr
    )
    assert out.read_text() == "".join(live[1:4])
    call_command(
        "audit_export",
        since=(timezone.now() - datetime.timedelta(hours=1)).isoformat(),
        output=str(out),
        stdout=sys.stderr,
    )
    assert out.read_text() == "".join(live)
    with pytest.raises(CommandError, match="needs --output"):
        call_command("audit_export", from_id=1)


def test_export_lag_in_metrics_and_freshness(version, audit_file: Path) -> None:
    make_rows(version, [1, 2, 3], age=datetime.timedelta(minutes=10))
    text = Client().get("/metrics").content.decode()
    assert "mlengine_audit_export_lag_rows 3.0" in text
    age = float(re.search(r"^mlengine_audit_export_lag_seconds (\S+)$", text, re.M).group(1))
    assert age >= 600
    items = Client().get("/monitoring/freshness").json()["items"]
    (item,) = [i for i in items if i["component"] == "audit_export"]
    assert item["status"] == "stale" and item["details"]["unexported_rows"] == 3
    audit_export_run()
    assert "mlengine_audit_export_lag_rows 0.0" in Client().get("/metrics").content.decode()
    items = Client().get("/monitoring/freshness").json()["items"]
    (item,) = [i for i in items if i["component"] == "audit_export"]
    assert item["status"] == "ok" and item["details"]["last_exported_id"] == BASE_ID + 3


def test_beat_runs_the_export_and_retention_with_expiry() -> None:
    entries = {
        task.task: task for task in PeriodicTask.objects.filter(task__startswith="predictions.")
    }
    assert set(entries) == {"predictions.audit_export", "predictions.retention"}
    assert all(entry.expire_seconds and entry.enabled for entry in entries.values())


def test_the_tasks_run_the_services(version, audit_file: Path) -> None:

    make_rows(version, [1, 2])
    assert audit_export_task.apply().get() == 2
    assert prediction_retention_task.apply().get() == 0  # retention is off by default


@pytest.mark.django_db(transaction=True)
def test_every_row_committed_by_two_workers_is_exported_once_in_id_order(
    gunicorn_factory, settings
) -> None:
    """Real concurrency: two gunicorn workers insert while several exporter processes run at
    once; then ``manage.py audit_export`` (the fault suite's interface) finishes the job."""
    audit_file = Path(settings.AUDIT_LOG_FILE)  # the file the subprocesses see too
    audit_file.unlink(missing_ok=True)
    model_train(
        config=training_config_resolve(config_data=SMALL_CONFIG), source="command", activate=True
    )
    base = gunicorn_factory(workers=2)
    env = {k: v for k, v in os.environ.items() if k not in {"CACHE_URL", "CELERY_BROKER_URL"}}
    env.update(
        {"DJANGO_SETTINGS_MODULE": "mlengine.settings.test", "DATABASE_URL": test_database_url()}
    )
    command = [sys.executable, str(ROOT / "manage.py"), "audit_export"]

    def client() -> None:
        with requests.Session() as session:
            for _ in range(20):
                session.get(f"{base}/predict", params={"symbol": "SP500"}, timeout=60)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    exporters = []
    while any(thread.is_alive() for thread in clients):
        exporters += [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in "ab"]
        time.sleep(1.0)
    for thread in clients:
        thread.join()
    for process in exporters:
        assert process.wait(timeout=120) == 0
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)

    committed = list(PredictionRecord.objects.order_by("id").values_list("id", "request_id"))
    assert len(committed) == 80
    lines = [parse_line(raw) for raw in audit_file.read_bytes().splitlines()]
    assert [(line.id, line.request_id) for line in lines] == [(i, str(r)) for i, r in committed]
    connection.close()  # the subprocesses' writes, seen through a fresh connection
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_an_exporter_killed_mid_run_loses_and_repeats_nothing(settings) -> None:
    """kill -9 of ``manage.py audit_export`` at whatever point it has reached (between a write
    and its progress commit, or inside a write): the next run completes the file, every row once."""
    audit_file = Path(settings.AUDIT_LOG_FILE)  # the file the subprocess sees too
    audit_file.unlink(missing_ok=True)
    version = make_version(is_active=True)
    created = timezone.now() - datetime.timedelta(minutes=5)
    PredictionRecord.objects.bulk_create(
        PredictionRecord(
            request_id=uuid.uuid4(),
            created_at=created,
            event_time=created,
            symbol="SP500",
            model_version=version,
            features={"close": float(n)},
            prediction=0.5,
            confidence=0.0,
            as_of=created,
            latency_ms=1.0,
        )
        for n in range(20_000)
    )
    env = {k: v for k, v in os.environ.items() if k not in {"CACHE_URL", "CELERY_BROKER_URL"}}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.test",
            "DATABASE_URL": test_database_url(),
            "AUDIT_EXPORT_BATCH": "50",
        }
    )
    command = [sys.executable, str(ROOT / "manage.py"), "audit_export"]
    exporter = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and exporter.poll() is None:
        if audit_file.exists() and audit_file.stat().st_size > 200_000:
            break
        time.sleep(0.01)
    assert exporter.poll() is None, "the exporter finished before it could be killed"
    exporter.kill()  # SIGKILL: no cleanup of any kind
    exporter.wait(timeout=30)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)

    committed = list(PredictionRecord.objects.order_by("id").values_list("id", flat=True))
    lines = [parse_line(raw) for raw in audit_file.read_bytes().splitlines()]
    assert [line.id for line in lines] == committed
    connection.close()
    assert audit_verify().ok


# --- 15: tamper evidence -----------------------------------------------------------------------


@pytest.fixture
def exported(version, audit_file: Path) -> list[PredictionRecord]:
    rows = make_rows(version, [1, 2, 3, 5, 6])
    audit_export_run()
    return rows


def verify_fails(match: str) -> str:
    with pytest.raises(CommandError, match=match) as failure:
        call_command("audit_verify")
    return str(failure.value)


def test_verify_passes_on_an_untouched_trail(exported, capsys) -> None:
    call_command("audit_verify")
    assert "OK: 5 rows match 5 lines" in capsys.readouterr().out
    # The outcome is filled in later; that is not tampering.
    PredictionRecord.objects.filter(id=exported[0].id).update(outcome=1)
    assert audit_verify().ok


def test_verify_names_a_row_changed_in_the_database(exported) -> None:
    PredictionRecord.objects.filter(id=exported[2].id).update(prediction=0.99)
    message = verify_fails("changed in the database")
    assert f"row id {exported[2].id}" in message
    assert str(exported[2].request_id) in message and "prediction" in message


def test_verify_names_a_deleted_row(exported) -> None:
    PredictionRecord.objects.filter(id=exported[1].id).delete()
    message = verify_fails("deleted")
    assert f"row id {exported[1].id}" in message and str(exported[1].request_id) in message


def test_verify_names_a_row_inserted_out_of_order(exported, version) -> None:
    (late,) = make_rows(version, [4])  # below ids already exported
    make_rows(version, [7])
    audit_export_run()  # the export moves on past it
    message = verify_fails("inserted out of order")
    assert f"row id {late.id}" in message and str(late.request_id) in message


def test_verify_names_a_line_edited_in_the_file(exported, audit_file: Path) -> None:
    lines = audit_file.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"prediction":0.53', '"prediction":0.54')
    audit_file.write_text("".join(lines))
    verify_fails(f"id {exported[1].id}.*edited in the file")


def test_verify_reports_a_missing_file(exported, audit_file: Path) -> None:
    audit_file.unlink()
    verify_fails("missing")


# --- 16: retention -----------------------------------------------------------------------------


def test_retention_deletes_old_exported_rows_keeps_the_rest_and_verify_still_passes(
    version, audit_file: Path, settings
) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    old = datetime.timedelta(days=40)
    make_rows(version, [1, 2, 3, 4], age=old)
    audit_export_run()
    make_rows(version, [5], age=datetime.timedelta(days=1))
    make_rows(version, [6], age=old)  # old, but behind a younger row: only a prefix goes
    audit_export_run()
    make_rows(version, [7], age=old)  # old and not exported
    result = prediction_retention_run(batch_size=3)
    assert result.deleted == 4 and result.sealed_through == BASE_ID + 4
    assert result.kept_unexported == 1
    remaining = set(PredictionRecord.objects.values_list("id", flat=True))
    assert remaining == {BASE_ID + n for n in (5, 6, 7)}
    seals = list(AuditSeal.objects.order_by("through_id").values_list("through_id", "rows_deleted"))
    assert seals == [(BASE_ID + 3, 3), (BASE_ID + 4, 1)]  # one seal per batch
    lines = file_lines(audit_file)
    assert AuditSeal.objects.get(through_id=BASE_ID + 4).chain_hash == lines[3]["hash"]
    report = audit_verify()
    assert report.ok, report.message
    assert report.sealed_through == BASE_ID + 4 and report.pending_rows == 1
    # Tampering after retention is still found, from the seal on.
    PredictionRecord.objects.filter(id=BASE_ID + 5).update(confidence=0.5)
    assert not audit_verify().ok


def test_retention_never_deletes_unexported_rows(version, audit_file: Path, settings) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    make_rows(version, [1, 2], age=datetime.timedelta(days=40))
    assert prediction_retention_run().deleted == 0
    assert PredictionRecord.objects.count() == 2


def test_retention_refuses_rows_the_file_does_not_confirm(
    version, audit_file: Path, settings
) -> None:
    settings.PREDICTION_RETENTION_DAYS = 30
    rows = make_rows(version, [1, 2], age=datetime.timedelta(days=40))
    audit_export_run()
    PredictionRecord.objects.filter(id=rows[0].id).update(prediction=0.01)
    with pytest.raises(RetentionRefused):
        prediction_retention_run()
    assert PredictionRecord.objects.count() == 2 and not AuditSeal.objects.exists()


def test_retention_is_off_by_default(version, audit_file: Path, capsys) -> None:
    make_rows(version, [1], age=datetime.timedelta(days=4000))
    audit_export_run()
    call_command("prediction_retention")
    assert "Retention is off" in capsys.readouterr().out
    assert PredictionRecord.objects.count() == 1
