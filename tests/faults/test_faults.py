"""Faults under load on private services (issue 10, "Proof"): the promises that must survive them.

Each scenario breaks one thing while a load generator calls ``/predict`` (or, for the broker,
while an operator asks for training), removes the fault, and checks, after recovery:

- no answer 200 without its committed ``PredictionRecord`` row (every 200's request id is looked
  up in the database), and each 200's ``X-Request-ID`` is its body's ``request_id``;
- no 5xx but the documented 503s, in the error shape with a documented code;
- recovery without restarting the app: after the fault is removed, answers are 200 again within
  ``RECOVERY_BOUND`` seconds (how long it took is recorded, not asserted);
- every committed row exactly once in the JSONL export after ``manage.py audit_export``.

Every problem found is listed at once, after the scenario's figures are recorded (see
``tests/faults/conftest.py`` for where they go).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults.conftest import ProductionApp, record_figures
from tests.faults.load import (
    NO_ANSWER,
    Answer,
    LoadGenerator,
    recovery_seconds,
    status_counts,
)

pytestmark = pytest.mark.services

PREDICT = "/predict?symbol=SP500"
# Answers 200 in a row, all started after the fault was removed, that count as serving again.
STREAK = 20
# Seconds the app gets to serve again after a fault is removed before the scenario fails.
RECOVERY_BOUND = 60.0
# Seconds a service stays down under load.
OUTAGE = 3.0
# ERROR lines one fault may cause: a few kinds of expected failure, once per worker each.
MAX_ERROR_LINES_PER_FAULT = 12
DATABASE_OUTAGE_CODES = frozenset({"audit_unavailable", "database_unavailable"})


@dataclass(frozen=True)
class Fault:
    injected: float
    removed: float
    recovered: bool  # STREAK answers 200 within RECOVERY_BOUND after the removal


class Problems:
    """Problems counted by kind, each with its first example, reported together at the end."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def add(self, kind: str, example: object = "") -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, str(example)[:300])

    def report(self) -> str:
        return "\n".join(
            f"- {kind}: {count}" + (f" (e.g. {self.examples[kind]})" if self.examples[kind] else "")
            for kind, count in self.counts.items()
        )


def body_request_id(answer: Answer) -> str | None:
    return answer.body.get("request_id") if isinstance(answer.body, dict) else None


def checked_log(
    app: ProductionApp, problems: Problems, *, since: int, faults: int
) -> dict[str, int]:
    """The app log's figures since byte ``since``, with a problem for any traceback and for more
    ERROR lines than a rate-limited log writes: expected failures are one line per kind per
    LOG_RATE_LIMIT_SECONDS per worker, not one per failed request (thousands before)."""
    logs = app.log_figures(since=since)
    if logs["log_tracebacks"]:
        problems.add("tracebacks in the app log", logs["log_tracebacks"])
    if logs["log_error_lines"] > MAX_ERROR_LINES_PER_FAULT * faults:
        problems.add("more ERROR lines than a rate-limited log writes", logs["log_error_lines"])
    return logs


def check_answers(
    answers: list[Answer],
    problems: Problems,
    *,
    allowed_codes: frozenset[str],
    allow_no_answer: bool,
) -> None:
    """Statuses: 200 with its request id, documented 503s, and nothing else."""
    for answer in answers:
        if answer.status == 200:
            body_id = body_request_id(answer)
            if body_id != answer.request_id:
                problems.add(
                    "200 whose X-Request-ID is not its body's request_id",
                    f"{answer.request_id} vs {body_id}",
                )
        elif answer.status == NO_ANSWER:
            if not allow_no_answer:
                problems.add(f"no HTTP answer ({answer.error})")
        elif answer.status == 503 and answer.code in allowed_codes:
            details = answer.body["error"]["details"]
            if "request_id" in details and details["request_id"] != answer.request_id:
                problems.add(
                    f"503 {answer.code} whose X-Request-ID is not details.request_id",
                    f"{answer.request_id} vs {details['request_id']}",
                )
        else:
            problems.add(f"undocumented answer {answer.label}", answer.body)


def exported_request_ids(app: ProductionApp, problems: Problems) -> Counter[str] | None:
    """Run ``manage.py audit_export`` and count the request ids of the file's lines."""
    result = app.manage("audit_export", check=False)
    if result.returncode != 0:
        problems.add("manage.py audit_export failed", (result.stderr or result.stdout).strip())
        return None
    counts: Counter[str] = Counter()
    if not app.audit_file.exists():
        return counts
    for number, line in enumerate(app.audit_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            problems.add("export line that is not JSON", f"line {number}: {line[:80]}")
            continue
        counts[request_id_of(record)] += 1
    return counts


def request_id_of(record: Any) -> str:
    """A line's request id, at the top level or in the row it wraps (``{"row": {...}}``)."""
    if isinstance(record, dict):
        if "request_id" in record:
            return str(record["request_id"])
        for value in record.values():
            if isinstance(value, dict) and "request_id" in value:
                return str(value["request_id"])
    return "<no request_id>"


def conclude(
    app: ProductionApp,
    *,
    scenario: str,
    answers: list[Answer],
    faults: list[Fault],
    rows_before: int,
    log_from: int,
    allowed_codes: frozenset[str] = frozenset(),
    allow_no_answer: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Check a load scenario's answers against the database and the export; record figures."""
    problems = Problems()
    check_answers(answers, problems, allowed_codes=allowed_codes, allow_no_answer=allow_no_answer)
    for number, fault in enumerate(faults, start=1):
        if not fault.recovered:
            problems.add(
                f"fault {number}: no {STREAK} answers 200 in a row within {RECOVERY_BOUND:.0f} s "
                "of its removal"
            )
        if fault.removed > fault.injected and not any(
            fault.injected <= answer.started < fault.removed for answer in answers
        ):
            problems.add(f"fault {number}: the load generator made no request during it")

    committed = app.row_request_ids(after_id=rows_before)
    for answer in answers:
        if answer.status == 200 and body_request_id(answer) not in committed:
            problems.add("200 without a committed PredictionRecord row", body_request_id(answer))

    exported = exported_request_ids(app, problems)
    exported_lines = None
    if exported is not None:
        every_row = app.row_request_ids()
        for request_id in every_row:
            if exported[request_id] != 1:
                problems.add(
                    f"committed row exported {min(exported[request_id], 2)}"
                    f"{'+' if exported[request_id] > 1 else ''} times",
                    request_id,
                )
        for request_id in exported.keys() - every_row:
            problems.add("export line without a committed row", request_id)
        exported_lines = sum(exported[request_id] for request_id in committed)

    ends = [fault.injected for fault in faults[1:]] + [float("inf")]
    recovery = [
        recovery_seconds(answers, injected=fault.injected, removed=fault.removed, until=end)
        for fault, end in zip(faults, ends, strict=True)
    ]
    logs = checked_log(app, problems, since=log_from, faults=len(faults))
    figures = {
        "scenario": scenario,
        "requests": len(answers),
        "ok_200": sum(answer.status == 200 for answer in answers),
        "statuses": status_counts(answers),
        "committed_rows": len(committed),
        "exported_lines": exported_lines,
        "recovery_s": recovery,
        **(extra or {}),
        **logs,
        "problems": sum(problems.counts.values()),
    }
    record_figures(figures)
    assert not problems.counts, f"{scenario} (app log: {app.log}):\n{problems.report()}"


def test_kill_9_of_a_gunicorn_worker_under_load(healthy_app: ProductionApp) -> None:
    """gunicorn respawns a SIGKILLed worker; the other one serves meanwhile. The request the dead
    worker was serving gets no answer (its row may be committed: that is allowed)."""
    app = healthy_app
    rows_before, log_from = app.last_row_id(), app.log_size()
    faults: list[Fault] = []
    respawn: list[float | None] = []
    with LoadGenerator(app.port, PREDICT) as load:
        assert load.wait_for_streak(STREAK, since=time.monotonic(), timeout=RECOVERY_BOUND)
        for _ in range(3):
            # The oldest worker: the one respawned by the previous kill has had time to boot.
            victim = app.worker_pids()[0]
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            respawned = app.wait_for_workers(without=victim)
            respawn.append(None if respawned is None else round(respawned, 3))
            recovered = load.wait_for_streak(STREAK, since=killed, timeout=RECOVERY_BOUND)
            faults.append(Fault(injected=killed, removed=killed, recovered=recovered))
            time.sleep(2.0)
    conclude(
        app,
        scenario="kill -9 of a gunicorn worker (x3)",
        answers=load.answers,
        faults=faults,
        rows_before=rows_before,
        log_from=log_from,
        allow_no_answer=True,
        extra={"respawn_s": respawn},
    )


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stopped_under_load(healthy_app: ProductionApp, mode: str) -> None:
    """``pg_ctl stop -m fast`` (clean) or ``-m immediate`` (a crash), then start again: 503s
    while it is down, predictions again after, without restarting the app."""
    app = healthy_app
    rows_before, log_from = app.last_row_id(), app.log_size()
    with LoadGenerator(app.port, PREDICT) as load:
        assert load.wait_for_streak(STREAK, since=time.monotonic(), timeout=RECOVERY_BOUND)
        injected = time.monotonic()
        try:
            app.postgres.stop(mode=mode)
            time.sleep(OUTAGE)
        finally:
            app.postgres.start()
        removed = time.monotonic()
        recovered = load.wait_for_streak(STREAK, since=removed, timeout=RECOVERY_BOUND)
        time.sleep(1.0)
    conclude(
        app,
        scenario=f"PostgreSQL stop -m {mode} and start",
        answers=load.answers,
        faults=[Fault(injected=injected, removed=removed, recovered=recovered)],
        rows_before=rows_before,
        log_from=log_from,
        allowed_codes=DATABASE_OUTAGE_CODES,
        extra={"outage_s": round(removed - injected, 3)},
    )


def test_redis_killed_under_load(healthy_app: ProductionApp) -> None:
    """The cache is an optimisation: with Redis dead, ``/predict`` answers 200 from the
    upstream, and uses the cache again once it is back."""
    app = healthy_app
    rows_before, log_from = app.last_row_id(), app.log_size()
    with LoadGenerator(app.port, PREDICT) as load:
        assert load.wait_for_streak(STREAK, since=time.monotonic(), timeout=RECOVERY_BOUND)
        upstream_before = app.upstream.hits
        injected = time.monotonic()
        try:
            app.redis.kill()
            time.sleep(OUTAGE)
        finally:
            app.redis.start()
        removed = time.monotonic()
        upstream_calls = app.upstream.hits - upstream_before
        recovered = load.wait_for_streak(STREAK, since=removed, timeout=RECOVERY_BOUND)
        time.sleep(1.0)
    conclude(
        app,
        scenario="Redis (cache) killed and restarted",
        answers=load.answers,
        faults=[Fault(injected=injected, removed=removed, recovered=recovered)],
        rows_before=rows_before,
        log_from=log_from,
        extra={
            "outage_s": round(removed - injected, 3),
            "upstream_calls_in_outage": upstream_calls,
        },
    )


def test_activations_under_load_are_served_from_the_next_request(
    healthy_app: ProductionApp,
) -> None:
    """Activations through the API while both workers serve ``/predict``: each worker routes
    from its own copy of the routes, and its guarded INSERT is refused once the routing
    generation moved, so every request sent after an activation answered names the version it
    activated. No request fails; every 200 has its committed row."""
    app = healthy_app
    config = app.root / "train.json"
    offline = {key: value for key, value in app.env.items() if key != "MARKET_DATA_URL"}
    app.manage("train_model", "--config", str(config), env=offline)  # a version, not active
    ((first,), (second,)) = app.postgres.query(
        "SELECT 'v' || v.version FROM models_registry_modelversion v "
        "JOIN models_registry_registeredmodel m ON m.id = v.model_id "
        "WHERE m.name = 'default' ORDER BY v.is_active DESC, v.version DESC LIMIT 2"
    )
    auth = {"Authorization": f"Token {app.token}"}
    rows_before, log_from = app.last_row_id(), app.log_size()
    problems = Problems()
    # (the activation's call started, its answer ended, the version)
    switches: list[tuple[float, float, str]] = []
    with LoadGenerator(app.port, PREDICT) as load:
        assert load.wait_for_streak(STREAK, since=time.monotonic(), timeout=RECOVERY_BOUND)
        for target in (second, first, second, first):
            answer = app.call(
                "POST", f"/models/activate/{target}", body={"reason": "fault suite"}, headers=auth
            )
            if answer.status != 200:
                problems.add(f"activation of {target} not 200", answer.label)
            switches.append((answer.started, answer.ended, target))
            time.sleep(1.0)
        # Each activation as a "fault" of no duration: the answers after it are all 200s.
        faults = [
            Fault(
                injected=ended,
                removed=ended,
                recovered=load.wait_for_streak(STREAK, since=ended, timeout=RECOVERY_BOUND),
            )
            for _, ended, _ in switches
        ]
    stale = 0
    for answer in load.answers:
        if answer.status != 200 or not isinstance(answer.body, dict):
            continue
        due = [target for _, ended, target in switches if ended < answer.started]
        # A request that overlaps the next activation call may see either version.
        overlaps = any(
            called < answer.ended and answer.started <= ended for called, ended, _ in switches
        )
        if due and not overlaps and answer.body.get("model_version") != due[-1]:
            stale += 1
            problems.add(
                f"answered by {answer.body.get('model_version')} after {due[-1]} was activated",
                body_request_id(answer),
            )
    assert not problems.counts, f"activations under load:\n{problems.report()}"
    conclude(
        app,
        scenario="activations under load (x4)",
        answers=load.answers,
        faults=faults,
        rows_before=rows_before,
        log_from=log_from,
        extra={"activations": len(switches), "answers_after_an_activation_stale": stale},
    )


def test_training_refused_while_the_broker_is_down(healthy_app: ProductionApp) -> None:
    """``POST /models/train`` with the broker dead: 503 ``broker_unavailable`` and no run left
    ``queued`` without a task id; once the broker is back, training is accepted again."""
    app = healthy_app
    runs_before = app.postgres.query("SELECT COALESCE(MAX(id), 0) FROM models_registry_trainingrun")
    runs_before, log_from = runs_before[0][0], app.log_size()
    auth = {"Authorization": f"Token {app.token}"}
    body = {"symbols": ["SP500"]}

    def train() -> Answer:
        return app.call("POST", "/models/train", body=body, headers=auth, timeout=60)

    problems = Problems()
    try:
        app.redis.kill()
        refused = [train() for _ in range(3)]
    finally:
        app.redis.start()
    removed = time.monotonic()
    for answer in refused:
        if answer.status != 503 or answer.code != "broker_unavailable":
            problems.add("broker down: not 503 broker_unavailable", answer.label)

    accepted: list[Answer] = []
    while time.monotonic() - removed < RECOVERY_BOUND:
        answer = train()
        accepted.append(answer)
        if answer.status == 202:
            break
        time.sleep(0.5)
    if not accepted or accepted[-1].status != 202:
        last = accepted[-1].label if accepted else "no request"
        problems.add(f"broker back: no 202 within {RECOVERY_BOUND:.0f} s", last)
    answers = refused + accepted

    runs = app.postgres.query(
        "SELECT id, status, task_id FROM models_registry_trainingrun WHERE id > %s ORDER BY id",
        (runs_before,),
    )
    for run_id, status, task_id in runs:
        if status == "queued" and not task_id:
            problems.add("training run left queued without a task id", f"run {run_id}")

    figures = {
        "scenario": "broker (Redis) down on POST /models/train",
        "requests": len(answers),
        "statuses": status_counts(answers),
        "runs_created": len(runs),
        "runs_by_status": dict(Counter(status for _, status, _ in runs)),
        "orphan_runs": sum(status == "queued" and not task_id for _, status, task_id in runs),
        "recovery_s": [round(accepted[-1].ended - removed, 3)] if accepted else None,
        **checked_log(app, problems, since=log_from, faults=1),
        "problems": sum(problems.counts.values()),
    }
    record_figures(figures)
    assert not problems.counts, (
        f"broker down on training (app log: {app.log}):\n{problems.report()}"
    )
