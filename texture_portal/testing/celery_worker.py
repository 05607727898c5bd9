"""A real Celery worker (and beat) for end-to-end tests: `celery -A texture_portal worker` as a subprocess, on
Redis, against the pytest-django test database; `celery_beat` adds `celery -A texture_portal beat`.

The test using it must be `@pytest.mark.django_db(transaction=True)` (the worker only sees committed rows)
and marked `redis` and `postgres` (a separate process cannot share SQLite's in-memory test database).
While the fixture is active, this process sends tasks to the broker instead of running them eagerly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def test_redis_url() -> str:
    """Redis for test workers: REDIS_URL (CI points it at a database of its own), else db 1 on localhost."""
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/1"


@dataclass
class CeleryWorker:
    process: subprocess.Popen
    log_path: Path
    broker_url: str
    env: dict = field(repr=False, default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], object], *, timeout: float = 30, what: str = "condition"):
        """Poll `predicate` until it returns something truthy; on timeout fail with the worker's log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(
                    f"celery worker exited ({self.process.returncode}) waiting for {what}:\n{self.log()[-4000:]}"
                )
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}; worker log tail:\n{self.log()[-4000:]}")


def _drop_broker_pools(app) -> None:
    """Forget connection/producer pools made earlier in this process. Even eager `.delay()` acquires a
    producer, so a pool bound to the default broker URL may exist; Celery resets the same two attributes
    after a fork (`Celery._after_fork`)."""
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    # kombu keeps its own registry of pools by broker URL, which `app.pool` asks: a pool closed above would be
    # handed out again ("Acquire on closed pool") to the next test that uses a worker
    pools.reset()


def _database_url(settings_dict: dict) -> str:
    user = settings_dict.get("USER") or "postgres"
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def celery_env() -> dict:
    """Extra environment of the worker and beat processes (a test module overrides this fixture to set, e.g.,
    a fast DISPATCH_TICK_SECONDS: settings are read when those processes start)."""
    return {}


@pytest.fixture
def celery_worker(transactional_db, settings, celery_env):
    """Start a worker on Redis against the test database; route this process's `.delay()` to it."""
    from django.db import connection

    from texture_portal.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs PostgreSQL (it cannot see SQLite's in-memory test database)")
    broker_url = test_redis_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "texture_portal.settings",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_BROKER_URL": broker_url,
        "OEM_RATE_LIMIT_REDIS_URL": broker_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "OEM_HTTP_TIMEOUT_SECONDS": str(settings.OEM_HTTP_TIMEOUT_SECONDS),
        "DATABASE_CONN_MAX_AGE": "0",
        **celery_env,
    }
    for slug, url in settings.OEM_BASE_URLS.items():
        env[f"OEM_{slug.upper()}_BASE_URL"] = url

    previous = {k: app.conf[k] for k in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=broker_url, task_always_eager=False)
    _drop_broker_pools(app)
    app.control.purge()  # nothing left over from an earlier run on this Redis database

    log = tempfile.NamedTemporaryFile(prefix="celery-worker-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "texture_portal",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = CeleryWorker(process=process, log_path=Path(log.name), broker_url=broker_url, env=env)
    try:
        worker.wait_for(lambda: "ready." in worker.log(), timeout=60, what="the worker to be ready")
        yield worker
    finally:
        _stop(process)
        app.control.purge()
        _drop_broker_pools(app)
        app.conf.update(**previous)
        log.close()
        os.unlink(log.name)


@pytest.fixture
def celery_beat(celery_worker):
    """`celery -A texture_portal beat` beside the worker, with the worker's environment: the schedule of
    CELERY_BEAT_SCHEDULE sends its tasks to the worker as in production."""
    directory = tempfile.mkdtemp(prefix="celery-beat-")
    log_path = Path(directory) / "beat.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "texture_portal",
                "beat",
                "--loglevel=INFO",
                f"--schedule={Path(directory) / 'schedule'}",
                f"--pidfile={Path(directory) / 'beat.pid'}",
            ],
            cwd=BASE_DIR,
            env=celery_worker.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    beat = CeleryWorker(process=process, log_path=log_path, broker_url=celery_worker.broker_url, env=celery_worker.env)
    try:
        beat.wait_for(lambda: "beat: Starting" in beat.log(), timeout=60, what="beat to start")
        yield beat
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)
