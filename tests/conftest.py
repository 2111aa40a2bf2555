"""The named cast and the shared fixtures.

A real Celery worker (``celery_worker_process``) is started only when the suite runs on
PostgreSQL with ``CELERY_BROKER_URL`` set; tests that need it are marked ``real_worker``
and skipped on the embedded default (SQLite, eager tasks).
"""

import importlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import hypothesis
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from coaching import celery_app
from tests.factories import UserFactory

# CI (CI=true) runs the property tests on a fixed seed, so a landing never hangs on a new random draw;
# local runs draw fresh examples each time and keep what failed in .hypothesis/.
hypothesis.settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "output"


def real_services() -> bool:
    return bool(settings.CELERY_BROKER_URL) and settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    if real_services():
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL + a Celery broker (DATABASE_URL and CELERY_BROKER_URL)")
    for item in items:
        if "real_worker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _plans_from_migration(request):
    """Put back the plans a data migration seeds, which a transactional test's flush removes.

    Tests run in any order on either database; without this, a test after a ``transaction=True``
    test would find no plans (post_migrate restores content types and permissions, not data).
    """
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if marker is None and not names & {"db", "transactional_db", "live_server"}:
        return
    transactional = bool(marker and marker.kwargs.get("transaction"))
    transactional = transactional or bool(names & {"transactional_db", "live_server"})
    request.getfixturevalue("transactional_db" if transactional else "db")
    from django.apps import apps

    from coaching.models import Plan

    if not Plan.objects.exists():
        importlib.import_module("coaching.migrations.0002_seed_plans").seed(apps, None)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is for attackers; tests log in thousands of times."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def coach(db):
    return UserFactory(email="alice@example.com", name="Alice 王", timezone="Asia/Taipei")


@pytest.fixture
def other_coach(db):
    return UserFactory(email="bob@example.com", name="Bob 林", timezone="Asia/Taipei")


@pytest.fixture
def staff(db):
    return UserFactory(email="charlie@example.com", name="Charlie Staff", is_staff=True)


@pytest.fixture
def admin_user(db):
    return UserFactory(email="dana@example.com", name="Dana Admin", is_staff=True, is_superuser=True)


def _client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
        client.force_login(user)
    return client


@pytest.fixture
def api_for():
    """``api_for(user)`` -> an APIClient logged in as that user (None: anonymous)."""
    return _client_for


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process on the test database and a queue of this run's own."""
    if not real_services():
        pytest.skip("needs PostgreSQL + a Celery broker")
    queue = f"test-{uuid.uuid4().hex[:10]}"
    celery_app.conf.task_default_queue = queue
    celery_app.conf.task_always_eager = False
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "CELERY_TASK_DEFAULT_QUEUE": queue, "DB_CONN_MAX_AGE": "0"}
    OUTPUT.mkdir(exist_ok=True)
    log_path = OUTPUT / f"celery-worker-{queue}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "coaching",
            "worker",
            "-Q",
            queue,
            "-c",
            "2",
            "-n",
            f"{queue}@%h",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.queue = queue
    proc.log_path = log_path
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
