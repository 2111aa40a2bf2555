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
    response = client.get(URL, {"format": "csv", "headers": "keys", **params})
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
    # 2026-03-31 17:30 UTC is 1 April 01:30 in Taipei: in April, written as local wall time with its zone.
    assert first["created_at"] == "2026-04-01 01:30:00"
    assert first["time_zone"] == "Asia/Taipei"
    assert first["client"] == "王小明"
    assert first["session_title"] == "目標設定"
    assert first["minutes"] == "60.00"
    assert first["counts_toward_quota"] == "true"
    assert first["session_date"] == "2026-04-01"
    assert first["plan"] == "pro"
    assert [r[2] for r in rows[1:]] == ["original", "original", "adjustment", "retry_failed"]


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
    assert without.decode().count("\r\n") == 1 + 4 and without.decode().count("\n") == 1 + 4  # CRLF (RFC 4180)


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
    taipei_first = parse(b"".join(usage_history_csv(coach, taipei, engine="copy")))[1]
    ny_first = parse(b"".join(usage_history_csv(coach, ny, engine="copy")))[1]
    assert taipei_first[:2] == ["2026-04-01 01:30:00", "Asia/Taipei"]
    assert ny_first[:2] == ["2026-04-01 22:00:00", "America/New_York"]  # 02:00 UTC on 2 April, EDT
    assert len(parse(b"".join(usage_history_csv(coach, taipei, engine="copy")))) == 1 + 4 + 5
    assert len(parse(via_copy)) == 1 + 3 + 5  # New York's April starts after the 01:30 Taipei row


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh-hant", ["記錄時間", "時區", "類型", "會談", "客戶", "會談狀態", "會談日期", "語音辨識服務"]),
        ("en", ["Recorded at", "Time zone", "Kind", "Session", "Client", "Session status", "Session date", "Provider"]),
    ],
)
def test_csv_headers_follow_the_readers_language_unless_headers_keys(api_for, coach, history, language, expected):
    coach.language = language
    coach.save(update_fields=["language"])
    response = api_for(coach).get(URL, {"format": "csv", **APRIL})
    rows = parse(b"".join(response.streaming_content))

    assert rows[0][:8] == expected and len(rows[0]) == len(HEADER)
    assert rows[1][:2] == ["2026-04-01 01:30:00", "Asia/Taipei"]  # the data is the same in every language
    _, keyed = download(api_for(coach), **APRIL)
    assert parse(keyed)[0] == list(HEADER)


def test_unknown_headers_style_is_a_400(api_for, coach):
    response = api_for(coach).get(URL, {"format": "csv", "headers": "fr"})
    assert response.status_code == 400
    assert response.json()["detail"] == "headers: Unknown headers 'fr': use one of labels, keys."
