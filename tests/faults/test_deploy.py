"""deploy/ refers to things that exist: the entry points, the health endpoints, the settings it sets."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import yaml
from django.urls import resolve

from coaching import health

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Read by deploy/ itself (gunicorn.conf.py, the worker command lines), not by the settings.
DEPLOY_ONLY = {"CELERY_CONCURRENCY"}
# Read by dj-database-url (dj_database_url.config()), not by name in the settings.
LIBRARY_READ = {"DATABASE_URL"}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_every_role_on_one_image_with_health_checks():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    app_roles = {name: s for name, s in services.items() if name not in ("postgres", "redis")}
    assert {s["image"] for s in app_roles.values()} == {"coaching-assistant:latest"}
    assert services["web"]["command"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "coaching.wsgi"]
    probe = " ".join(services["web"]["healthcheck"]["test"])
    assert resolve(re.search(r"127\.0\.0\.1:8000(/\w+)", probe).group(1)).func is health.readyz
    assert "--appendonly yes" in " ".join(services["redis"]["command"])  # queued work survives a Redis restart
    assert "celery -A coaching worker" in " ".join(services["worker"]["command"])
    assert services["beat"]["command"][:4] == ["celery", "-A", "coaching", "beat"]


def test_gunicorn_config_reads_its_sizing_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_THREADS", "6")
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert (config["workers"], config["threads"], config["worker_class"]) == (3, 6, "gthread")


def test_every_setting_the_deploy_sets_is_one_the_app_reads():
    read = set(re.findall(r'env\w*\("([A-Z_]+)"', (ROOT / "coaching/settings.py").read_text()))
    read |= set(re.findall(r'os\.getenv\("([A-Z_]+)"', (ROOT / "coaching/settings.py").read_text()))
    read |= set(re.findall(r'os\.getenv\("([A-Z_]+)"', (DEPLOY / "gunicorn.conf.py").read_text()))
    given = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines() if "=" in line}
    given = {name for name in given if not name.startswith("#")}
    assert given - read - DEPLOY_ONLY - LIBRARY_READ == set()


def test_systemd_units_run_the_same_commands():
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    assert set(units) == {"coaching-web.service", "coaching-worker@.service", "coaching-beat.service"}
    assert "gunicorn -c deploy/gunicorn.conf.py coaching.wsgi" in units["coaching-web.service"]
    assert "celery -A coaching worker" in units["coaching-worker@.service"]
    assert "celery -A coaching beat" in units["coaching-beat.service"]
    assert all("EnvironmentFile=/etc/coaching/env" in text for text in units.values())
