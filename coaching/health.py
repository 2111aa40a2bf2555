"""Health endpoints for load balancers and orchestrators.

``GET /healthz`` (liveness): the process answers. It touches no database, broker or session, so a
dead dependency never gets healthy web processes restarted in a loop.

``GET /readyz`` (readiness): the database answers ``SELECT 1`` and, when a broker is configured, the
Celery broker accepts a connection. 200 when both do; 503 naming the one that failed otherwise,
so a load balancer stops sending traffic to a machine that cannot serve it. Each check is bounded
(a couple of seconds), so a hung dependency is a 503, not a hung probe.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)
BROKER_TIMEOUT_SECONDS = 2.0


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def database_check() -> str:
    """'' when the database answers, else what went wrong. A broken connection is dropped for the next try."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        connection.close_if_unusable_or_obsolete()
        return f"{type(exc).__name__}: {str(exc).strip() or 'no answer'}"[:300]
    return ""


def broker_check() -> str:
    """'' when the Celery broker accepts a connection (or none is configured: tasks run in-process)."""
    if not settings.CELERY_BROKER_URL:
        return ""
    from coaching.celery import app

    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises transport-specific errors: any failure means "not ready"
        return f"{type(exc).__name__}: {str(exc).strip() or 'no answer'}"[:300]
    return ""


_last_failed: list[str] = []


def _log_change(failed: list[str], checks: dict) -> None:
    """Log when readiness changes, not on every probe (a load balancer probes every few seconds)."""
    global _last_failed
    if failed == _last_failed:
        return
    if failed:
        logger.warning("Not ready: %s", ", ".join(f"{name} ({checks[name]['error']})" for name in failed))
    else:
        logger.warning("Ready again: %s answer", " and ".join(checks))
    _last_failed = failed


@never_cache
@require_GET
def readyz(request):
    checks = {}
    for name, check in (("database", database_check), ("broker", broker_check)):
        started = time.monotonic()
        error = check()
        checks[name] = {"ok": not error, "ms": round((time.monotonic() - started) * 1000, 1)}
        if error:
            checks[name]["error"] = error
    failed = [name for name, result in checks.items() if not result["ok"]]
    _log_change(failed, checks)
    if failed:
        body = {"status": "unavailable", "failed": failed, "checks": checks}
        body["detail"] = f"Not ready: the {' and the '.join(failed)} cannot be reached."
        response = JsonResponse(body, status=503)
        response["Retry-After"] = "5"
        response._has_been_logged = True  # django.request would log every probe: _log_change logs the change
        return response
    if not settings.CELERY_BROKER_URL:
        checks["broker"]["note"] = "no broker configured: tasks run in-process"
    return JsonResponse({"status": "ok", "failed": [], "checks": checks})
