"""Every attempt leaves a true record, and a failure leaves no file behind."""

import datetime
import gc
import os
import sys

import pytest
from openpyxl.worksheet import _writer as openpyxl_writer

from coaching.models import ExportRecord
from exports import csv_export, services, xlsx_export
from exports import rows as rows_module
from exports.csv_export import CHUNK_CHARS, CsvChunks
from tests.exports.conftest import APRIL
from tests.factories import UsageLogFactory

pytestmark = pytest.mark.django_db


def record(export) -> ExportRecord:
    return ExportRecord.objects.get(pk=export.record_id)


def test_a_csv_stream_is_running_until_it_ends(coach, history):
    export = services.usage_export(coach, fmt="csv", params=APRIL)
    assert record(export).status == "running"
    body = b"".join(export.content)
    export.content.close()
    assert (record(export).status, record(export).bytes, record(export).rows) == ("succeeded", len(body), 4)


def test_a_stream_closed_before_it_started_is_recorded_as_interrupted(coach, history):
    export = services.usage_export(coach, fmt="csv", params=APRIL)
    export.content.close()

    rec = record(export)
    assert rec.status == "failed" and rec.finished_at is not None
    assert rec.error == "Interrupted: the download stopped after 0 bytes (0 rows); the file is incomplete."


def test_a_client_that_goes_away_mid_download_leaves_a_failed_record_with_the_bytes_sent(coach, frozen):
    for i in range(1500):  # well over one 64 KiB chunk
        UsageLogFactory(user=coach, created_at=frozen - datetime.timedelta(minutes=i + 1))
    export = services.usage_export(coach, fmt="csv", params={})

    sent = 0
    for chunk in export.content:  # the browser takes a chunk or two, then the connection drops
        sent += len(chunk)
        if sent >= CHUNK_CHARS:
            break
    export.content.close()

    rec = record(export)
    assert rec.status == "failed"
    assert rec.bytes == sent and 0 < rec.rows < 1500
    assert rec.error.startswith(f"Interrupted: the download stopped after {sent} bytes")
    # The connection is still usable (on PostgreSQL the COPY was cancelled, the time zone put back).
    assert ExportRecord.objects.filter(status="failed").count() == 1


def test_an_error_while_streaming_is_recorded(coach, history, monkeypatch):
    def broken(*args, **kwargs):
        yield from ()
        raise RuntimeError("database went away")

    monkeypatch.setattr(csv_export, "usage_history_csv", lambda *a, **k: CsvChunks(broken()))
    export = services.usage_export(coach, fmt="csv", params=APRIL)

    with pytest.raises(RuntimeError):
        b"".join(export.content)
    export.content.close()
    rec = record(export)
    assert (rec.status, rec.error) == ("failed", "RuntimeError: database went away")


def _rows_then_fail(real):
    def rows(*args, **kwargs):
        iterator = real(*args, **kwargs)
        yield next(iterator)
        raise RuntimeError("disk full")

    return rows


def test_a_failed_xlsx_is_recorded_and_leaves_no_temporary_file(coach, history, monkeypatch):
    before = set(openpyxl_writer.ALL_TEMP_FILES)
    monkeypatch.setattr(xlsx_export, "usage_history_rows", _rows_then_fail(rows_module.usage_history_rows))

    with pytest.raises(RuntimeError, match="disk full"):
        services.usage_export(coach, fmt="xlsx", params=APRIL)

    rec = ExportRecord.objects.get()
    assert (rec.status, rec.format, rec.error, rec.bytes) == ("failed", "xlsx", "RuntimeError: disk full", 0)
    leftovers = [p for p in set(openpyxl_writer.ALL_TEMP_FILES) - before if os.path.exists(p)]
    assert leftovers == []


def test_a_failed_xlsx_closes_its_sheet_writers_in_order(coach, history, monkeypatch):
    # Closing openpyxl's file before its row writer left a generator that, once garbage-collected,
    # wrote "</sheetData>" into the closed file ("Exception ignored ... I/O operation on closed file").
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(xlsx_export, "usage_history_rows", _rows_then_fail(rows_module.usage_history_rows))

    with pytest.raises(RuntimeError, match="disk full"):
        services.usage_export(coach, fmt="xlsx", params=APRIL)
    gc.collect()

    assert [f"{u.exc_type.__name__}: {u.exc_value} in {u.object!r}" for u in unraisable] == []


def test_a_refusal_records_a_nul_byte_as_text(coach):
    # The refusal records the raw format; on PostgreSQL a NUL byte in it was a DataError.
    with pytest.raises(services.ExportError, match="Unknown format 'c\\\\x00sv'"):
        services.usage_export(coach, fmt="c\x00sv", params={})

    rec = ExportRecord.objects.get()
    assert (rec.format, rec.status) == ("c\\x00sv", "failed")
    assert rec.error == "Unknown format 'c\\x00sv': use one of csv, pdf, xlsx."


def test_a_failed_pdf_is_recorded(coach, history, monkeypatch):
    from exports import pdf_export

    def explode(*args, **kwargs):
        raise OSError("fontconfig exploded")

    monkeypatch.setattr(pdf_export, "pdf_write", explode)
    with pytest.raises(OSError):
        services.usage_export(coach, fmt="pdf", params=APRIL)
    rec = ExportRecord.objects.get()
    assert (rec.status, rec.error) == ("failed", "OSError: fontconfig exploded")


def test_pdf_and_xlsx_live_in_anonymous_temporary_files(coach, history):
    export = services.usage_export(coach, fmt="xlsx", params=APRIL)
    # A TemporaryFile has no name on disk (its "name" is a file descriptor): nothing to clean up later.
    assert isinstance(export.content.name, int)
    export.content.close()


def test_filenames_fall_back_to_ascii(coach, frozen):
    from analytics.periods import parse_period

    period = parse_period(APRIL, tz=coach.tzinfo)
    coach.name = "王小明"
    assert services.export_filenames(coach, period, "pdf") == (
        "usage-history_王小明_2026-04-01_2026-04-30.pdf",
        "usage-history_alice_2026-04-01_2026-04-30.pdf",
    )
    coach.name = "Ünïcode Name"
    assert services.export_filenames(coach, period, "csv")[1] == "usage-history_unicode-name_2026-04-01_2026-04-30.csv"
