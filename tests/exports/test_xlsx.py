"""The XLSX download, read back with openpyxl."""

import datetime
import io
from decimal import Decimal

import openpyxl
import pytest

from coaching.models import ExportRecord
from exports.rows import HEADER
from tests.exports.conftest import APRIL, HOSTILE_CLIENT

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage-history/export"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_xlsx_has_typed_cells_in_local_time_and_neutralised_text(api_for, coach, history):
    response = api_for(coach).get(URL, {"format": "xlsx", "headers": "keys", **APRIL})

    assert response.status_code == 200
    assert response["Content-Type"] == XLSX
    assert 'filename="usage-history_alice_2026-04-01_2026-04-30.xlsx"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    rows = list(sheet.iter_rows(values_only=True))

    assert rows[0] == HEADER
    assert len(rows) == 1 + 4
    first = dict(zip(HEADER, rows[1], strict=True))
    assert first["created_at"] == datetime.datetime(2026, 4, 1, 1, 30)  # local wall time, an Excel date
    assert first["time_zone"] == "Asia/Taipei"
    assert first["client"] == "王小明"
    assert first["minutes"] == 60 and isinstance(first["minutes"], (int, float))
    assert first["counts_toward_quota"] is True
    assert first["session_date"] == datetime.datetime(2026, 4, 1)
    formula = dict(zip(HEADER, rows[2], strict=True))
    # Stored as the text itself, marked as text (Excel shows =HYPERLINK(…) and never runs it).
    assert formula["client"] == HOSTILE_CLIENT and formula["session_title"] == "@SUM(1+1)"
    cells = {cell.column: cell for cell in next(sheet.iter_rows(min_row=3, max_row=3))}
    client_cell = cells[HEADER.index("client") + 1]
    assert client_cell.data_type == "s" and client_cell.quotePrefix is True
    assert cells[HEADER.index("kind") + 1].quotePrefix is False
    adjustment = dict(zip(HEADER, rows[3], strict=True))
    assert adjustment["seconds"] == -120 and Decimal(str(adjustment["minutes"])) == Decimal("-2")
    # No cell became a formula.
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)

    record = ExportRecord.objects.get(pk=response["X-Export-Record"])
    assert (record.status, record.format, record.rows, record.bytes) == ("succeeded", "xlsx", 4, len(body))


@pytest.mark.parametrize(
    ("language", "first", "minutes"), [("zh-hant", "記錄時間", "分鐘"), ("en", "Recorded at", "Minutes")]
)
def test_xlsx_headers_follow_the_readers_language(api_for, coach, history, language, first, minutes):
    coach.language = language
    coach.save(update_fields=["language"])
    body = b"".join(api_for(coach).get(URL, {"format": "xlsx", **APRIL}).streaming_content)
    header = next(openpyxl.load_workbook(io.BytesIO(body)).active.iter_rows(values_only=True))
    assert header[0] == first and header[HEADER.index("minutes")] == minutes
