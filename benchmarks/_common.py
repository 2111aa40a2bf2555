"""Set-up shared by the benchmark scripts: their own PostgreSQL database, Django pointed at it, timing.

Not a benchmark (``make bench`` skips files starting with "_"). Scripts run as
``python benchmarks/<name>.py`` import it with ``from _common import …``; importing it puts the
project root first on ``sys.path`` so ``coaching``, ``analytics`` and ``exports`` are the project's
packages (not ``benchmarks/exports.py``).

The server comes from DATABASE_URL (its database name is replaced by the benchmark's own);
default postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/"

# In-process requests with DEBUG off (no query log growing over thousands of requests): forced…
DEBUG_OFF = {"DEBUG": "false", "SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "testserver"}
# …and the secret key DEBUG off requires, unless one is set.
DEBUG_OFF_DEFAULTS = {"SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789"}


def server_url() -> urllib.parse.ParseResult:
    """The PostgreSQL server DATABASE_URL names; exits with a message on any other database."""
    url = urllib.parse.urlparse(os.environ.get("DATABASE_URL") or DEFAULT_SERVER)
    if not url.scheme.startswith("postgres"):
        raise SystemExit(f"This benchmark needs PostgreSQL; DATABASE_URL is {url.scheme}://…")
    return url


def database_url(name: str) -> str:
    """DATABASE_URL for database ``name`` on that server."""
    return urllib.parse.urlunparse(server_url()._replace(path=f"/{name}"))


def create_database(name: str, *, reuse: bool) -> None:
    """Create database ``name`` on the server; an existing one is dropped first unless ``reuse``."""
    import psycopg

    url = server_url()
    server = {"host": url.hostname or "127.0.0.1", "port": url.port or 5432, "user": url.username or "postgres"}
    if url.password:
        server["password"] = url.password
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not reuse:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not reuse:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(name: str, *, env: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None) -> None:
    """Point Django at database ``name`` and set it up.

    ``env`` is set in the environment before ``django.setup()``, ``defaults`` only where not set already.
    """
    os.environ["DATABASE_URL"] = database_url(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coaching.settings")
    os.environ.update(env or {})
    for key, value in (defaults or {}).items():
        os.environ.setdefault(key, value)
    import django

    django.setup()


def prepare_database(
    name: str,
    *,
    reuse: bool,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> None:
    """``create_database``, ``setup_django``, then ``migrate`` (a no-op on a reused, migrated database)."""
    create_database(name, reuse=reuse)
    setup_django(name, env=env, defaults=defaults)
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median of ``repeat`` timed calls of ``fn`` in milliseconds, after one untimed warm-up call."""
    fn()  # warm caches, templates and the connection
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (1-99, inclusive method); the value itself for a single sample."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]
