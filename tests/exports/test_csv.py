"""The CSV download, parsed back with the csv module."""

import csv
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.conf import settings

from coaching.models import ExportRecord
from exports.rows import HEADER
from tests.exports.conftest import APRIL, HOSTILE_CLIENT

pytestmark = pytest.mark.django_db
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
URL = "/api/v1/usage-history/export"


def download(client, **params) -> tuple:
    response = client.get(URL, {"format": "csv", **params})
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content)
    return response, body


def parse(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_csv_has_one_header_and_the_periods_rows_in_local_time(api_for, coach, history):
    response, body = download(api_for(coach), **APRIL)

    rows = parse(body)
    assert rows[0] == list(HEADER)
    assert len(rows) == 1 + 4  # the two March rows (one a minute before local midnight) are left out
    first = dict(zip(HEADER, rows[1], strict=True))
    # 2026-03-31 17:30 UTC is 1 April 01:30 in Taipei: in April, written with its offset.
    assert first["created_at"] == "2026-04-01T01:30:00+08:00"
    assert first["client"] == "王小明"
    assert first["session_title"] == "目標設定"
    assert first["minutes"] == "60.00"
    assert first["counts_toward_quota"] == "true"
    assert first["session_date"] == "2026-04-01"
    assert first["plan"] == "pro"
    assert [r[1] for r in rows[1:]] == ["original", "original", "adjustment", "retry_failed"]


def test_csv_neutralises_formulas_but_leaves_negative_numbers_numbers(api_for, coach, history):
    _, body = download(api_for(coach), **APRIL)
    text = body.decode("utf-8-sig")
    rows = [dict(zip(HEADER, r, strict=True)) for r in parse(body)[1:]]

    formula = rows[1]
    assert formula["client"] == "'" + HOSTILE_CLIENT
    assert formula["session_title"] == "'@SUM(1+1)"
    adjustment = rows[2]
    assert adjustment["seconds"] == "-120" and adjustment["minutes"] == "-2.00"
    assert Decimal(adjustment["minutes"]) == Decimal("-2.00")
    # Written bare (no quote, no apostrophe) so a spreadsheet reads a number.
    assert ",-120,-2.00,false,true,0.0000,pro," in text
    assert not any(cell.startswith(("=", "+", "@")) for row in parse(body)[1:] for cell in row)


def test_csv_starts_with_a_bom_unless_bom_0(api_for, coach, history):
    _, with_bom = download(api_for(coach), **APRIL)
    _, without = download(api_for(coach), bom="0", **APRIL)

    assert with_bom.startswith(b"\xef\xbb\xbf")
    assert without.startswith(b"created_at,")
    assert with_bom[3:] == without
    assert without.decode().count("\n") == 1 + 4 and "\r" not in without.decode()


def test_csv_response_headers(api_for, coach, history):
    response, _ = download(api_for(coach), **APRIL)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="usage-history_alice_2026-04-01_2026-04-30.csv"; '
        "filename*=UTF-8''usage-history_alice-%E7%8E%8B_2026-04-01_2026-04-30.csv"
    )
    assert response["Cache-Control"] == "private, no-store"


def test_csv_export_is_recorded_with_rows_and_bytes_when_the_stream_ends(api_for, coach, history):
    response, body = download(api_for(coach), **APRIL)

    record = ExportRecord.objects.get(pk=response["X-Export-Record"])
    assert record.status == ExportRecord.Status.SUCCEEDED
    assert (record.format, record.rows, record.bytes) == ("csv", 4, len(body))
    assert (str(record.period_start), str(record.period_end)) == ("2026-04-01", "2026-04-30")
    assert record.subject == coach and record.requested_by == coach
    assert record.started_at <= record.finished_at and record.error == ""


def test_an_empty_period_is_a_header_only_file(api_for, coach, history):
    _, body = download(api_for(coach), bom="0", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert parse(body) == [list(HEADER)]


def test_default_period_is_this_month_so_far_in_the_subjects_zone(api_for, coach, history):
    response, body = download(api_for(coach))
    assert "usage-history_alice_2026-04-01_2026-04-20.csv" in response["Content-Disposition"]
    assert len(parse(body)) == 1 + 4


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the COPY engine needs PostgreSQL")
def test_copy_and_orm_engines_write_the_same_bytes(coach, history, frozen):
    """On PostgreSQL the CSV comes from COPY; it must match the portable ORM writer byte for byte."""
    from analytics.periods import parse_period
    from exports.csv_export import usage_history_csv
    from tests.factories import ClientFactory, CoachingSessionFactory, UsageLogFactory

    awkward = ClientFactory(coach=coach, name='Quote " comma, and\nnew line')
    for title, provider in [("\tTab start", ""), ("-minus", "assemblyai"), ("", "google"), ("  spaced  ", "=x")]:
        session = CoachingSessionFactory(coach=coach, client=awkward, title=title)
        UsageLogFactory(user=coach, session=session, client=awkward, provider=provider, created_at=frozen)
    UsageLogFactory(user=coach, session=None, client=None, kind="adjustment", seconds=-30, created_at=frozen)
    ny = parse_period(APRIL, tz=zoneinfo.ZoneInfo("America/New_York"))
    taipei = parse_period(APRIL, tz=coach.tzinfo)

    for period in (taipei, ny):
        for bom in (True, False):
            via_copy = b"".join(usage_history_csv(coach, period, bom=bom, engine="copy"))
            via_orm = b"".join(usage_history_csv(coach, period, bom=bom, engine="orm"))
            assert via_copy == via_orm
    assert b"-04:00," in b"".join(usage_history_csv(coach, ny, engine="copy"))  # New York's own offset (EDT)
    assert len(parse(b"".join(usage_history_csv(coach, taipei, engine="copy")))) == 1 + 4 + 5
    assert len(parse(via_copy)) == 1 + 3 + 5  # New York's April starts after the 01:30 Taipei row
