"""Dockerfile, docker-compose.yml and .env.example agree with the code they deploy.

Docker is not needed: the files are parsed, and every command the image and the services run is
also run here (gunicorn, Celery, collectstatic, the health probe) with the production settings.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.bin.beat import beat
from celery.bin.control import inspect
from celery.bin.worker import worker
from django.utils.module_loading import import_string

from tests.test_settings import clean_env, random_secret_key, settings_env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")
REQUIRED_IN_PRODUCTION = (
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "DATABASE_URL",
    "CACHE_URL",
    "CELERY_BROKER_URL",
)
# Variables the settings do not read, and who does.
DOCUMENTED_EXTRAS = {
    "HOST": "make run / manage.py bootstrap",
    "PORT": "make run / manage.py bootstrap; the host port docker compose publishes",
    "POSTGRES_PASSWORD": "docker compose: the postgres service and DATABASE_URL",
    "WEB_CONCURRENCY": "gunicorn's worker count",
}
SERVICE_PORTS = {"postgres": 5432, "redis": 6379}


# --- parsing helpers ----------------------------------------------------------------------------


def interpolate(value: str) -> str:
    """Resolve compose's ``${NAME:-default}`` / ``${NAME:?message}`` / ``${NAME}`` as if unset."""

    def resolve(match: re.Match[str]) -> str:
        operator, operand = match.group(2), match.group(3) or ""
        if operator == ":?":
            return "set-by-the-operator"
        return operand if operator == ":-" else ""

    return re.sub(r"\$\{([A-Z][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}", resolve, str(value))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):  # the "- NAME=value" form
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def command(service: str) -> list[str]:
    raw = SERVICES[service]["command"]
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def healthcheck_shell(service: str) -> str:
    """The shell command of a healthcheck, whatever form (CMD, CMD-SHELL, string) it takes."""
    test = SERVICES[service]["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    kind, *args = test
    return args[0] if kind == "CMD-SHELL" else shlex.join(args)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


DOCKERFILE = dockerfile_instructions()


def dockerfile(keyword: str) -> list[str]:
    return [args for instruction, args in DOCKERFILE if instruction == keyword]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in dockerfile("ENV"):
        env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def dockerfile_cmd() -> list[str]:
    (cmd,) = dockerfile("CMD")
    return json.loads(cmd)


def dockerfile_healthcheck() -> str:
    (healthcheck,) = dockerfile("HEALTHCHECK")
    return healthcheck.split(" CMD ", 1)[1]


def collectstatic_run() -> str:
    (run,) = [args for args in dockerfile("RUN") if "collectstatic" in args]
    return run


def build_secret_key() -> str:
    match = re.search(r"SECRET_KEY=(\S+)\s+python manage\.py collectstatic", collectstatic_run())
    assert match, "collectstatic must get its build-only SECRET_KEY inline"
    return match.group(1)


def env_example() -> dict[str, str]:
    """Variable name -> documented default, from ``NAME=value`` and ``# NAME=value`` lines."""
    documented: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            documented[match.group(1)] = match.group(2)
    return documented


def production_env(**overrides: str) -> dict[str, str]:
    return clean_env(
        **{
            "DJANGO_SETTINGS_MODULE": "mlengine.settings.production",
            "SECRET_KEY": random_secret_key(),
            **overrides,
        }
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_defines_every_service() -> None:
    assert set(LONG_RUNNING) | {"migrate"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:15")
    assert SERVICES["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck(service: str) -> None:
    healthcheck = SERVICES[service].get("healthcheck")

    assert healthcheck, f"{service} has no healthcheck"
    assert not healthcheck.get("disable")
    assert healthcheck_shell(service).strip()
    assert SERVICES[service].get("restart") in {"always", "unless-stopped"}


def test_healthchecks_probe_what_each_service_does() -> None:
    assert "pg_isready" in healthcheck_shell("postgres")
    assert "redis-cli ping" in healthcheck_shell("redis")
    assert "/health/ready" in healthcheck_shell("web")
    # $$ is compose's escape for a literal $, so the shell sees $HOSTNAME: the worker's node name.
    assert "celery -A mlengine inspect ping -d celery@$$HOSTNAME" in healthcheck_shell("worker")
    assert "beat" in healthcheck_shell("beat")


def test_python_one_liners_in_healthchecks_compile() -> None:
    for service in ("web", "beat"):
        shell = healthcheck_shell(service)
        code = shlex.split(shell)[shlex.split(shell).index("-c") + 1]
        compile(code, f"{service} healthcheck", "exec")


def test_web_healthcheck_is_the_images_probe() -> None:
    # Two copies of one probe must not drift apart.
    assert healthcheck_shell("web") == dockerfile_healthcheck()


def test_app_services_share_one_image_and_environment() -> None:
    first = SERVICES["web"]
    for service in APP_SERVICES:
        assert SERVICES[service]["image"] == first["image"]
        assert SERVICES[service]["build"] == first["build"]
        assert environment(service) == environment("web")


def test_artifacts_volume_is_shared_at_artifacts_dir() -> None:
    env = environment("web")
    artifacts_dir = env["ARTIFACTS_DIR"]

    assert "artifacts" in COMPOSE["volumes"]
    for service in ("web", "worker", "beat"):
        assert f"artifacts:{artifacts_dir}" in SERVICES[service]["volumes"], service
    # The audit log lives on the same volume, so it survives a redeploy.
    assert env["AUDIT_LOG_FILE"].startswith(artifacts_dir.rstrip("/") + "/")
    # The image creates the mount point owned by the app user; a fresh named volume copies that
    # ownership, so the non-root processes can write to it.
    assert dockerfile_env()["ARTIFACTS_DIR"] == artifacts_dir
    assert artifacts_dir in collectstatic_run().split("chown", 1)[1]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_production_variable_is_set(service: str) -> None:
    env = environment(service)

    assert set(REQUIRED_IN_PRODUCTION) <= set(env)
    assert env["DJANGO_SETTINGS_MODULE"] == "mlengine.settings.production"
    # No default key: compose refuses to start until the operator sets one.
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_sets_only_variables_the_settings_read(service: str) -> None:
    unknown = set(environment(service)) - settings_env_names() - {"DJANGO_SETTINGS_MODULE"}

    assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"


def test_service_urls_point_at_compose_services() -> None:
    env = {name: interpolate(value) for name, value in environment("web").items()}
    database = urlsplit(env["DATABASE_URL"])
    postgres_env = {k: interpolate(v) for k, v in SERVICES["postgres"]["environment"].items()}

    assert database.scheme in {"postgres", "postgresql"}
    assert (database.hostname, database.port) == ("postgres", SERVICE_PORTS["postgres"])
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    for name in ("CACHE_URL", "CELERY_BROKER_URL"):
        url = urlsplit(env[name])
        assert url.scheme == "redis", name
        assert (url.hostname, url.port) == ("redis", SERVICE_PORTS["redis"]), name
    # The cache and the broker must not share a Redis database: a cache clear would drop tasks.
    assert urlsplit(env["CACHE_URL"]).path != urlsplit(env["CELERY_BROKER_URL"]).path
    # Compose's health probe sends the first ALLOWED_HOSTS entry, which must be a real name.
    assert env["ALLOWED_HOSTS"].split(",")[0] in {"localhost", "127.0.0.1"}


def test_startup_order_waits_for_healthy_dependencies() -> None:
    for service in APP_SERVICES:
        depends_on = SERVICES[service]["depends_on"]
        assert isinstance(depends_on, dict), f"{service}: depends_on needs conditions"
        for dependency, spec in depends_on.items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in ("web", "worker", "beat"):
        depends_on = SERVICES[service]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
    # A one-shot service that restarts would migrate forever.
    assert SERVICES["migrate"].get("restart", "no") == "no"


def test_service_commands_name_real_modules() -> None:

    assert command("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    assert (ROOT / "manage.py").is_file()

    web = command("web")
    assert web[0] == "gunicorn"
    assert "mlengine.wsgi:application" in web
    module, _, attribute = "mlengine.wsgi:application".partition(":")
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file()
    assert f"{attribute} =" in (ROOT / "mlengine" / "wsgi.py").read_text()

    worker, beat = command("worker"), command("beat")
    assert worker[:4] == ["celery", "-A", "mlengine", "worker"]
    assert beat[:4] == ["celery", "-A", "mlengine", "beat"]
    assert isinstance(find_app("mlengine"), Celery)
    scheduler = beat[beat.index("--scheduler") + 1]
    assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert import_string(scheduler.replace(":", ".")).__name__ == "DatabaseScheduler"


def test_celery_options_used_by_compose_exist() -> None:
    # An unknown option makes the process exit at once; compare with Celery's own CLI definition.

    def options(cli_command: click.Command) -> set[str]:
        return {opt for param in cli_command.params for opt in param.opts}

    assert "--loglevel" in options(worker)
    assert {"--loglevel", "--scheduler"} <= options(beat)
    ping = shlex.split(healthcheck_shell("worker"))
    assert {"-d", "--timeout"} <= set(ping)
    assert {"-d", "--timeout"} <= options(inspect)


def test_web_publishes_the_port_gunicorn_binds() -> None:
    web = command("web")
    bind = web[web.index("--bind") + 1]
    published = [interpolate(port).rsplit(":", 1)[1] for port in SERVICES["web"]["ports"]]

    assert published == [bind.rsplit(":", 1)[1]]


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_base_image_user_and_settings() -> None:
    assert dockerfile("FROM") == ["python:3.11-slim"]
    users = dockerfile("USER")
    assert users
    assert users[-1] not in {"root", "0"}
    # Every instruction after the last USER runs as that user, CMD included.
    last_user = max(i for i, (keyword, _) in enumerate(DOCKERFILE) if keyword == "USER")
    last_cmd = max(i for i, (keyword, _) in enumerate(DOCKERFILE) if keyword == "CMD")
    assert last_user < last_cmd
    env = dockerfile_env()
    assert env["DJANGO_SETTINGS_MODULE"] == "mlengine.settings.production"
    # The build-only key must not be baked into the image's runtime environment.
    assert "SECRET_KEY" not in env
    assert not any("SECRET_KEY" in args for args in dockerfile("ARG"))


def test_dockerfile_installs_requirements_before_copying_the_code() -> None:
    copies = [(i, args) for i, (keyword, args) in enumerate(DOCKERFILE) if keyword == "COPY"]
    runs = [(i, args) for i, (keyword, args) in enumerate(DOCKERFILE) if keyword == "RUN"]
    copy_requirements = next(i for i, args in copies if args.split()[0] == "requirements.txt")
    install = next(i for i, args in runs if "pip install -r requirements.txt" in args)
    copy_code = next(i for i, args in copies if args.split()[0] == ".")

    # Code changes then reuse the cached dependency layer.
    assert copy_requirements < install < copy_code
    assert any("collectstatic --noinput" in args for i, args in runs if i > copy_code)


def test_dockerfile_runs_gunicorn_on_the_exposed_port() -> None:
    cmd = dockerfile_cmd()
    bind = cmd[cmd.index("--bind") + 1]

    assert cmd[0] == "gunicorn"
    assert "mlengine.wsgi:application" in cmd
    assert dockerfile("EXPOSE") == [bind.rsplit(":", 1)[1]]
    assert f"127.0.0.1:{bind.rsplit(':', 1)[1]}/health/ready" in dockerfile_healthcheck()
    assert "urllib" in dockerfile_healthcheck()
    # compose runs the same server, adding only the worker count.
    assert command("web") == [*cmd, "--workers", "${WEB_CONCURRENCY:-2}"]


def test_dockerignore_keeps_local_state_out_and_the_code_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            parts = Path(path).parts
            prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
            if any(fnmatch.fnmatch(prefix, bare) for prefix in prefixes) or fnmatch.fnmatch(
                path, bare
            ):
                verdict = not negate
        return verdict

    for path in (".venv", ".git", "var/db.sqlite3", "artifacts", ".env", "staticfiles"):
        assert ignored(path), path
    for path in (
        "requirements.txt",
        "manage.py",
        "mlengine/wsgi.py",
        "mlcore/metrics.py",
        "features/data/sp500.csv.gz",
        ".env.example",
    ):
        assert not ignored(path), path


# --- .env.example -------------------------------------------------------------------------------


def test_env_example_lists_exactly_the_variables_that_are_read() -> None:
    documented = set(env_example())
    read = settings_env_names()

    assert read - documented == set(), "read by the settings but not in .env.example"
    assert documented - read - set(DOCUMENTED_EXTRAS) == set(), "in .env.example, read by nothing"


def test_env_example_documents_every_variable_compose_interpolates() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))

    assert interpolated <= set(env_example())


def test_env_example_explains_every_variable_with_its_default() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    variable = re.compile(r"#? ?[A-Z][A-Z0-9_]*=")
    for index, line in enumerate(lines):
        if not variable.fullmatch(line.strip().split("=", 1)[0] + "="):
            continue
        above = index - 1
        while above >= 0 and variable.fullmatch(lines[above].strip().split("=", 1)[0] + "="):
            above -= 1  # HOST and PORT share one comment
        comment = []
        while above >= 0 and lines[above].startswith("#") and lines[above].strip() != "#":
            comment.insert(0, lines[above])
            above -= 1
        assert comment, f"no comment above {line!r}"
        assert "Default" in " ".join(comment), f"no default given for {line!r}"


def test_env_example_defaults_are_the_real_defaults() -> None:
    # Setting every documented default must change nothing. Paths depend on the checkout, and
    # SECRET_KEY has no usable default in production; those are left out.
    skip = {
        "SECRET_KEY",
        "ARTIFACTS_DIR",
        "AUDIT_LOG_FILE",
        "STATIC_ROOT",
        "DATABASE_URL",
        "PROMETHEUS_MULTIPROC_DIR",
    }
    defaults = {
        name: value
        for name, value in env_example().items()
        if name not in skip and name not in DOCUMENTED_EXTRAS
    }
    code = (
        "import json, sys, django; django.setup(); from django.conf import settings as s; "
        "names = sys.argv[1:]; "
        "print(json.dumps({n: getattr(s, n) for n in names if hasattr(s, n)}, default=str))"
    )
    key = random_secret_key()
    results = []
    for env in (production_env(SECRET_KEY=key), production_env(SECRET_KEY=key, **defaults)):
        result = run([sys.executable, "-c", code, *defaults, "CACHES", "DATABASES"], env)
        assert result.returncode == 0, result.stderr
        results.append(json.loads(result.stdout.strip().splitlines()[-1]))

    unset, documented = results
    assert len(unset) > 15  # the comparison covers most variables
    assert documented == unset


# --- the commands the image and the services run ------------------------------------------------


@pytest.mark.parametrize("source", ["Dockerfile CMD", "compose web command"])
def test_gunicorn_accepts_the_configuration(source: str, tmp_path: Path) -> None:
    if source == "Dockerfile CMD":
        cmd = dockerfile_cmd()
    else:
        cmd = [interpolate(part) for part in command("web")]
    result = run(
        [sys.executable, "-m", *cmd, "--check-config"],
        production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
    )

    assert result.returncode == 0, result.stdout + result.stderr


# A worker's start, as gunicorn runs it: the application loaded, then the configuration's
# post_worker_init hook; then the figures the hook is for.
WORKER_START = """
import gc, runpy, sys
from mlengine.wsgi import application
hooks = runpy.run_path("gunicorn.conf.py")
before = gc.get_freeze_count()
hooks["post_worker_init"](None)
print(before, gc.get_freeze_count(), "predictions.apis" in sys.modules)
"""


def test_a_worker_freezes_what_the_application_loaded(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "-c", WORKER_START],
        production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    before, frozen, views_loaded = result.stdout.split()[-3:]
    # The URLconf (every view and what it imports) is loaded, then everything is frozen.
    assert (int(before), views_loaded) == (0, "True")
    assert int(frozen) > 100_000


def test_celery_app_loads_with_production_settings(tmp_path: Path) -> None:
    result = run(
        [sys.executable, "-m", "celery", "-A", "mlengine", "report"],
        production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "celery:" in result.stdout


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STATIC_ROOT filled by the Dockerfile's own collectstatic command and build-only key."""
    root = tmp_path_factory.mktemp("staticfiles")
    args = shlex.split(collectstatic_run().split("&&")[0])
    assert args[0].startswith("SECRET_KEY=")
    assert args[1:3] == ["python", "manage.py"]
    result = run(
        [sys.executable, *args[2:]],
        clean_env(
            DJANGO_SETTINGS_MODULE=dockerfile_env()["DJANGO_SETTINGS_MODULE"],
            SECRET_KEY=build_secret_key(),
            STATIC_ROOT=str(root),
        ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_collectstatic_builds_the_manifest(static_root: Path) -> None:
    manifest = json.loads((static_root / "staticfiles.json").read_text())

    assert "admin/css/base.css" in manifest["paths"]
    hashed = manifest["paths"]["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    assert (static_root / hashed).is_file()
    assert (static_root / (hashed + ".gz")).is_file()  # WhiteNoise's precompressed copy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_server(static_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image's CMD, bound to a free local port, with production settings and SQLite."""
    port = _free_port()
    cmd = dockerfile_cmd()
    cmd[cmd.index("--bind") + 1] = f"127.0.0.1:{port}"
    cmd[cmd.index("--worker-tmp-dir") + 1] = str(tmp_path_factory.mktemp("gunicorn"))
    database = tmp_path_factory.mktemp("db") / "db.sqlite3"
    env = production_env(
        DATABASE_URL=f"sqlite:///{database}",
        STATIC_ROOT=str(static_root),
        ALLOWED_HOSTS="ml.example.com,localhost",
        WEB_CONCURRENCY="1",
    )
    # As compose's one-shot migrate service does before web starts (/health/ready reads the
    # registry).
    migrated = run([sys.executable, "manage.py", "migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    process = subprocess.Popen(
        [sys.executable, "-m", *cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(f"{base}/health", headers={"Host": "localhost"})
                urllib.request.urlopen(request, timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"gunicorn did not start: {process.communicate()[1][-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown; nothing to drain here
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_image_healthcheck_passes_against_gunicorn(gunicorn_server: str) -> None:
    port = gunicorn_server.rsplit(":", 1)[1]
    probe = dockerfile_healthcheck().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    args = shlex.split(probe)
    assert args[0] == "python"

    def probe_with(allowed_hosts: str) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, *args[1:]], clean_env(ALLOWED_HOSTS=allowed_hosts))

    # The probe sends the first ALLOWED_HOSTS entry; gunicorn's process allows both names.
    assert probe_with("ml.example.com,localhost").returncode == 0
    assert probe_with("*").returncode == 0  # "*" becomes localhost
    # A host the site does not serve is rejected (400), and the probe reports it.
    assert probe_with("elsewhere.example.net").returncode != 0


def test_gunicorn_serves_admin_static_files_through_whitenoise(
    gunicorn_server: str, static_root: Path
) -> None:
    hashed = json.loads((static_root / "staticfiles.json").read_text())["paths"][
        "admin/css/base.css"
    ]
    # Behind the TLS terminator, which says so in X-Forwarded-Proto (else: redirect to https).
    request = urllib.request.Request(
        f"{gunicorn_server}/static/{hashed}",
        headers={"Host": "ml.example.com", "X-Forwarded-Proto": "https"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        headers = response.headers

    assert response.status == 200
    assert body == (static_root / hashed).read_bytes()
    assert "immutable" in headers["Cache-Control"]  # hashed names are cached for good
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_gunicorn_redirects_plain_http_except_health(gunicorn_server: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(
        f"{gunicorn_server}/static/admin/css/base.css", headers={"Host": "ml.example.com"}
    )
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)

    assert redirect.value.code == 301
    assert redirect.value.headers["Location"].startswith("https://ml.example.com/")
    # The probes answer over plain HTTP (SECURE_REDIRECT_EXEMPT), at both prefixes.
    for path in ("/health", "/health/live", "/health/ready", "/api/v1/health/ready", "/metrics"):
        probe = urllib.request.Request(f"{gunicorn_server}{path}", headers={"Host": "localhost"})
        with opener.open(probe, timeout=10) as response:
            assert response.status == 200, path
