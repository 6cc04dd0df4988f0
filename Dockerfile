# The one image behind every long-running service in docker-compose.yml: gunicorn (this CMD),
# and the Celery worker and beat (compose overrides the command and the health check).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=mlengine.settings.production \
    ARTIFACTS_DIR=/data/artifacts \
    AUDIT_LOG_FILE=/data/artifacts/audit/predictions.jsonl \
    WEB_CONCURRENCY=2

WORKDIR /app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

# Dependencies first, so a code change does not reinstall them. Every pin has a manylinux wheel
# (psycopg[binary] included), so the slim image needs no compiler.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# The build-time key exists only for this command (production settings refuse to load without
# one); the real key comes from the environment at run time. The code stays root-owned and
# read-only for the app user; only the data directories are writable.
RUN SECRET_KEY=collectstatic-build-only-key-never-used-at-run-time-0123456789 \
       python manage.py collectstatic --noinput \
    && mkdir -p /data/artifacts/audit /app/var \
    && chown -R app:app /data/artifacts /app/var

USER app

EXPOSE 8000

# slim has no curl. The Host header is the first ALLOWED_HOSTS entry, so the probe is not
# rejected as a disallowed host; the probes are exempt from the HTTPS redirect. The probe is
# readiness (/health/ready: database, the active model loaded in this process, candle source),
# so a container that cannot answer /predict is reported unhealthy; /health/live is the
# liveness probe for orchestrators that restart on failure (see the README).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as u; h = os.environ.get('ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.').replace('*', 'localhost') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:8000/health/ready', headers={'Host': h}), timeout=8)"

# Exec form: gunicorn is PID 1 and gets SIGTERM for a graceful stop. It reads the worker count
# from WEB_CONCURRENCY itself (default 2 above); GUNICORN_CMD_ARGS adds any other flag.
# Heartbeat files go to /dev/shm because /tmp on overlayfs can stall workers.
CMD ["gunicorn", "mlengine.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-", "--timeout", "60"]
