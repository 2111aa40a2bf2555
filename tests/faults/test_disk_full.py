"""The disk fills up while an export writes its PDF or XLSX: a 507 with a message, no temp file left, the record failed.

The first two tests run anywhere (the write fails with ENOSPC inside the process). The last runs a
real gunicorn whose processes may not write files past 256 KB (``RLIMIT_FSIZE``: every write past
it fails with EFBIG, as on a full disk) with a temp directory of its own, and exports through it.
"""

from __future__ import annotations

import errno
import importlib
import io
import tempfile
from pathlib import Path

import openpyxl
import pytest
from django.apps import apps as django_apps
from django.db import connection

from coaching.models import ExportRecord, UsageLog
from exports import xlsx_export
from tests.factories import UsageLogFactory, UserFactory

from . import procs

SEED_PLANS = importlib.import_module("coaching.migrations.0002_seed_plans").seed
WEB_PORT = 31163
MESSAGE = (
    "The server ran out of disk space while writing your {} file, so nothing was saved. "
    "Please try again later, or export a shorter period."
)


@pytest.fixture
def pro_coach(db):
    coach = UserFactory(email="frank@example.com", name="Frank", plan_id="pro")
    for i in range(3):
        UsageLogFactory(user=coach, seconds=600 + i)
    return coach


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["xlsx", "pdf"])
def test_a_full_disk_is_a_507_with_a_message_and_a_failed_record(api_for, pro_coach, monkeypatch, fmt):
    opened: list = []
    real_temporary_file = tempfile.TemporaryFile

    def tracked(*args, **kwargs):
        handle = real_temporary_file(*args, **kwargs)
        opened.append(handle)
        return handle

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", tracked)  # the writers (pdf_export, xlsx_export) open them
    if fmt == "xlsx":
        monkeypatch.setattr(xlsx_export, "_sheet_fill", disk_full)
    else:
        from exports import pdf_export

        monkeypatch.setattr(pdf_export, "pdf_write", disk_full)
    response = api_for(pro_coach).get(f"/api/v1/usage-history/export?format={fmt}&period=30d")
    assert response.status_code == 507
    assert response.json() == {"detail": MESSAGE.format(fmt.upper())}
    record = ExportRecord.objects.get(subject=pro_coach)
    assert (record.status, record.rows, record.bytes) == ("failed", 0, 0)
    assert record.error == "OSError: [Errno 28] No space left on device"
    assert opened and all(handle.closed for handle in opened)  # the half-written file is gone


def seed_usage(user, rows: int) -> None:
    """``rows`` ledger rows a minute apart over the last days, in one INSERT … SELECT."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {UsageLog._meta.db_table} (user_id, kind, seconds, minutes, provider, provider_cost_usd,
                                                   billable, plan_code, created_at)
            SELECT %s, 'original', 60 + i %% 600, round((60 + i %% 600) / 60.0, 2), 'google', 0.0016, true, 'pro',
                   now() - interval '20 days' + i * interval '1 minute'
            FROM generate_series(0, %s) AS i
            """,
            [user.pk, rows - 1],
        )


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_server_that_cannot_write_past_256_kb_answers_507_and_keeps_no_temp_file(tmp_path):
    SEED_PLANS(django_apps, None)
    big = procs.with_password(UserFactory(email="gina@example.com", name="Gina", plan_id="pro"))
    small = procs.with_password(UserFactory(email="hank@example.com", name="Hank", plan_id="pro"))
    seed_usage(big, 20_000)
    seed_usage(small, 5)
    temp_dir = tmp_path / "server-tmp"
    temp_dir.mkdir()
    web = procs.gunicorn_start(WEB_PORT, "disk-full-web", file_size_limit=256 * 1024, TMPDIR=str(temp_dir))
    try:
        answers = {
            fmt: procs.get(WEB_PORT, f"/api/v1/usage-history/export?format={fmt}&period=30d", headers=procs.basic(big))
            for fmt in ("xlsx", "pdf")
        }
        left_behind = sorted(p.name for p in Path(temp_dir).iterdir())
        # The same server still serves what fits, and the health check says it is fine.
        fits = procs.get(WEB_PORT, "/api/v1/usage-history/export?format=xlsx&period=30d", headers=procs.basic(small))
        healthy = procs.get(WEB_PORT, "/healthz")[0]
    finally:
        procs.stop(web)

    for fmt, (status, _, body) in answers.items():
        assert status == 507, (fmt, body[:300])
        assert procs.json_body(body) == {"detail": MESSAGE.format(fmt.upper())}
    records = {r.format: r for r in ExportRecord.objects.filter(subject=big)}
    assert {fmt: (r.status, r.rows, r.bytes) for fmt, r in records.items()} == {
        "xlsx": ("failed", 0, 0),
        "pdf": ("failed", 0, 0),
    }
    assert all("File too large" in r.error for r in records.values()), [r.error for r in records.values()]
    assert left_behind == []
    status, headers, body = fits
    assert (status, healthy) == (200, 200)
    rows = list(openpyxl.load_workbook(io.BytesIO(body)).active.iter_rows(values_only=True))
    assert len(rows) == 1 + 5
    assert ExportRecord.objects.get(subject=small).status == "succeeded"
