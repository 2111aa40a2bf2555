"""The CSV opened by LibreOffice Calc (headless, Debian's libreoffice-calc-nogui) and read back with openpyxl.

LibreOffice is run the way docs/exports.md tells a user to open the file: character set
Unicode (UTF-8), separated by comma, "Detect special numbers" on. One conversion, about two
seconds. ``scripts/system-deps.sh --test`` (run by ``make test``) installs LibreOffice.
"""

import datetime
import os
import shutil
import subprocess

import openpyxl
import pytest

from exports.rows import HEADER
from tests.exports.conftest import APRIL, HOSTILE_CLIENT

pytestmark = pytest.mark.django_db
SOFFICE = shutil.which("soffice")
# CSV filter options: comma (44), double quote (34), UTF-8 (76), from line 1, no column types,
# English (US) (1033), quoted fields not forced to text, detect special numbers (dates, times, booleans).
CSV_IMPORT = "CSV:44,34,76,1,,1033,false,true"


@pytest.mark.skipif(SOFFICE is None and not os.environ.get("CI"), reason="LibreOffice: scripts/system-deps.sh --test")
def test_libreoffice_reads_dates_as_dates_numbers_as_numbers_and_chinese_intact(api_for, coach, history, tmp_path):
    coach.language = "en"
    coach.save(update_fields=["language"])
    response = api_for(coach).get("/api/v1/usage-history/export", {"format": "csv", **APRIL})
    source = tmp_path / "usage.csv"
    source.write_bytes(b"".join(response.streaming_content))

    subprocess.run(
        [
            SOFFICE or "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path / 'profile'}",
            f"--infilter={CSV_IMPORT}",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sheet = openpyxl.load_workbook(tmp_path / "usage.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))

    assert rows[0][:4] == ("Recorded at", "Time zone", "Kind", "Session")  # the byte-order mark is not in A1
    first, formula, adjustment = (dict(zip(HEADER, row, strict=True)) for row in rows[1:4])
    assert first["created_at"] == datetime.datetime(2026, 4, 1, 1, 30)  # a date-time, not text
    assert first["session_date"] == datetime.datetime(2026, 4, 1)
    assert (first["session_title"], first["client"], first["time_zone"]) == ("目標設定", "王小明", "Asia/Taipei")
    assert first["minutes"] == 60 and first["seconds"] == 3600 and first["provider_cost_usd"] == 0.96
    assert first["counts_toward_quota"] is True and adjustment["counts_toward_quota"] is False
    assert adjustment["minutes"] == -2 and adjustment["seconds"] == -120  # negative numbers stay numbers
    assert formula["client"] == "'" + HOSTILE_CLIENT  # text, never a formula
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert len(rows) == 1 + 4
