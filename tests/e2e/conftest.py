"""Browser tests: pytest-playwright driving Debian's Chromium (headless) against ``live_server``.

Playwright's own browser download does not work here, so these fixtures launch ``/usr/bin/chromium``
(installed by ``./scripts/system-deps.sh --test``, which ``make test`` runs) with Playwright's
sync API. Every test is marked ``browser``: ``make test-services`` leaves them out (``-m "not browser"``).
"""

import importlib
import io
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from playwright.sync_api import sync_playwright

from coaching.models import User

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED_PLANS = importlib.import_module("coaching.migrations.0002_seed_plans").seed
COACH_EMAIL = "coach@example.com"
COACH_PASSWORD = "coach-demo-2026"


CONTEXT = {
    "accept_downloads": True,
    "locale": "en-US",
    "timezone_id": "Asia/Taipei",
    "viewport": {"width": 1280, "height": 900},
}


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, headless, for one test module; Playwright gives it a fresh temporary profile.

    Module-scoped rather than session-scoped on purpose: Playwright's sync API keeps an event
    loop running in the test thread while it is started, and Django refuses ORM calls while a
    loop runs. The flag below allows them for the browser tests only (their ORM calls are
    plain synchronous ones), and stopping Playwright at the end of the module keeps every
    later test of the suite free of the loop and the flag.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/system-deps.sh --test (make test does).")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()


@pytest.fixture
def new_tab(chromium):
    """``new_tab(**context_options)`` -> a page in a fresh browser context (cookies, locale, viewport)."""
    contexts = []

    def make(**options):
        context = chromium.new_context(**{**CONTEXT, **options})
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def tab(new_tab):
    """A desktop-sized page in English."""
    return new_tab()


@pytest.fixture
def demo_coach(transactional_db, settings) -> User:
    """The documented demo world (``seed_demo``), and its coach.

    A transactional test's flush also empties the plan table its migration seeded, and
    ``serialized_rollback`` cannot put it back here: while Playwright's loop runs, Django hands
    this thread a fresh connection object, without the serialized copy. So: seed the plans the
    way the migration does (idempotent), then the demo world.
    """
    SEED_PLANS(django_apps, None)
    # A fast hasher: the demo passwords are hashed while seeding and checked at each login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-progress", stdout=io.StringIO())
    # The demo coach has not used the language switch: the browser context's locale decides the language.
    User.objects.filter(email=COACH_EMAIL).update(language="")
    return User.objects.select_related("plan").get(email=COACH_EMAIL)


def collect_errors(page) -> list[str]:
    """JavaScript errors on ``page`` from now on: console messages of type error and uncaught exceptions."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(page, live_server, *, email: str = COACH_EMAIL, password: str = COACH_PASSWORD, next_path: str = "") -> None:
    """Through the login form, as a person would; lands on the usage page."""
    page.goto(f"{live_server.url}/dashboard/usage{next_path}")
    assert "/accounts/login/" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/usage**")
    wait_for_charts(page)


def wait_for_charts(page) -> None:
    page.wait_for_function("() => window.usageDashboard && Object.keys(window.usageDashboard.charts).length === 3")
