"""The PDF as a reader checks it: numbers and money as they write them, one session count on page 1,
explained empty cells, totals, no near-blank page, period ``all`` from the first record, and a
report number with the generation time in every page's footer. Read back with pdfplumber.
"""

import datetime
import io
from decimal import Decimal

import pdfplumber
import pytest
from django.utils import translation

from coaching.models import ExportRecord
from exports.services import usage_export
from exports.templatetags.report_format import css_string, money, number
from tests.exports.conftest import APRIL
from tests.factories import CoachingSessionFactory, UsageLogFactory

pytestmark = pytest.mark.django_db
MM = 72 / 25.4  # PDF points per millimetre
FOOTER = 18 * MM  # the page's bottom margin, where the footer sits


def _render(coach, **params):
    export = usage_export(coach, fmt="pdf", params=params)
    record = ExportRecord.objects.get(pk=export.record_id)
    with pdfplumber.open(io.BytesIO(export.content.read())) as pdf:
        pages = []
        for page in pdf.pages:
            words = page.extract_words()
            body = [w["bottom"] for w in words if w["bottom"] < page.height - FOOTER]
            pages.append({"text": page.extract_text() or "", "filled": max(body, default=0) / (page.height - FOOTER)})
    return record, pages


@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_numbers_are_grouped_and_money_has_its_currencys_decimals(language):
    with translation.override(language):
        assert number(Decimal("1234567.5"), 2) == "1,234,567.50"
        assert number(3000) == "3,000"
        assert number(None) == "—"
        assert money(Decimal("2500.00"), "TWD") == "TWD 2,500"  # whole dollars
        assert money(Decimal("2500.50"), "TWD") == "TWD 2,500.50"  # cents when there are cents
        assert money(Decimal("1.1499"), "USD") == "USD 1.15"  # never the ledger's four places
        assert money(Decimal("12345.6"), "USD") == "USD 12,345.60"


def test_css_strings_cannot_break_out_of_the_footer():
    assert css_string('Ann "x"; } body { color: red') == "Ann \\000022x\\000022; \\00007d body \\00007b color: red"


def test_footer_page_count_session_count_and_no_near_blank_page(coach, history):
    # A session created in April but never transcribed: held (by its date) but not transcribed.
    CoachingSessionFactory(coach=coach, session_date=datetime.date(2026, 4, 10), status="uploading")
    record, pages = _render(coach, **APRIL)

    assert len(pages) == 2  # was 3: the detail table no longer starts a page of its own
    stamp = f"Report No. {record.pk:06d} · generated 2026-04-20 12:00 (Asia/Taipei)"
    assert all(stamp in page["text"] and f"Page {n} of 2" in page["text"] for n, page in enumerate(pages, 1))
    assert all(page["filled"] > 0.6 for page in pages[:-1])  # no page before the last is nearly empty

    first = pages[0]["text"]
    # Page 1 counts sessions one way: first transcribed in the period (2), in the summary and the chart.
    assert "Sessions transcribed 2 " in first
    items = [item.split(":") for item in first.split() if ":" in item]
    legend = {key: int(value) for key, value in items if key.isalpha() and value.isdigit()}
    assert legend == {"Uploading": 0, "Pending": 0, "Processing": 0, "Completed": 2, "Failed": 0, "Cancelled": 0}
    assert "held" not in first
    # The practice (sessions held, by date) is on its own page with its own, named count.
    assert "3 sessions held · " in pages[1]["text"]


def test_empty_cells_are_explained_and_big_numbers_grouped(coach, history, frozen):
    UsageLogFactory(user=coach, session=None, client=None, kind="original", seconds=150_000, created_at=frozen)
    _, pages = _render(coach, **APRIL)
    text = "\n".join(page["text"] for page in pages)

    assert "Minutes used in the period 2,590.00 " in text  # 90 + 2,500
    assert "2026-04-20 12:00 original — — — google 2,500.00 yes" in text
    assert "— the session or client was deleted after the usage was recorded." in text
    assert "Total, 5 rows (counting toward the plan: 2,590.00 min) 2,598.00" in text


def test_period_all_starts_at_the_first_record(coach, history):
    record, pages = _render(coach, period="all")

    # Alice's first record is the March session held on 2026-03-15 (not 2000-01-01 or 2020-01-01).
    assert (record.period_start, record.period_end) == (datetime.date(2026, 3, 15), datetime.date(2026, 4, 20))
    assert "2026-03-15 to 2026-04-20" in pages[0]["text"]
