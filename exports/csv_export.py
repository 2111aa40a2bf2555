"""Write usage-history rows as CSV, streamed in chunks so memory stays flat however many rows.

(Named ``csv_export``, not ``csv``: a module called ``csv`` would shadow the standard library's.)

The file (RFC 4180): UTF-8 with a byte-order mark by default (so Excel shows 王小明 rather than
mojibake), one header row (column labels in the reader's language, or stable English keys), CRLF
line ends, a cell quoted when it holds a comma, a quote, a CR or a LF (and only then), numbers
written bare with no thousands separator (``-2.00`` stays a number), date-times as local wall time
``2026-04-01 01:30:00`` with the zone in the ``time_zone`` column (Excel and LibreOffice read that
as a date-time; an ISO ``T…+08:00`` stays text), booleans ``true``/``false``, an empty cell for a
missing value. Text a spreadsheet could run as a formula gets a leading ``'`` (``rows.neutralise``).

Two engines write exactly the same bytes (a test on PostgreSQL compares them):

``CsvChunks``   the subject's rows through the ORM (``.iterator(chunk_size=…)``, a server-side
                cursor on PostgreSQL) and the ``csv`` module. Portable; used on SQLite.
``CopyChunks``  PostgreSQL's ``COPY (<the same query, formatted by the database>) TO STDOUT``,
                streamed block by block. Used on PostgreSQL: the ORM path spends most of its
                time building a Python object per cell and reaches about a third of COPY's
                throughput; this one keeps the formatting in the database (see
                ``benchmarks/exports.py`` and docs/exports.md).

COPY ends its lines with ``\\n`` whatever the data; ``CopyChunks`` turns each row's end into CRLF
(psycopg hands over exactly one row per block, so a LF inside a quoted cell is never touched).
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator, Sequence

from django.db import connections

from analytics.periods import Period
from coaching.models import User

from .registry import ExportJob
from .rows import COLUMNS, DATETIME_FORMAT, HEADER, neutralise, usage_history_rows, usage_history_sql_rows

BOM = "\ufeff"
# Bytes gathered before a chunk is handed to the server: big enough to amortise the per-chunk
# cost, small enough that the first bytes reach the browser at once.
CHUNK_CHARS = 64 * 1024
LINE_END = "\r\n"


def cell_text(value) -> object:
    """A typed cell as CSV text; numbers pass through (the csv module writes them), text is neutralised."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, datetime.datetime):
        return value.strftime(DATETIME_FORMAT)  # already in the period's zone (the time_zone column)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def header_text(header: Sequence[str], *, bom: bool) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=LINE_END).writerow(header)
    return (BOM if bom else "") + buffer.getvalue()


class _Chunks:
    """An iterator of UTF-8 byte chunks of a CSV file that counts the data rows and bytes it produced."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.rows = 0
        self.bytes = 0
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        self._chunks.close()


class CsvChunks(_Chunks):
    """Typed rows (``COLUMNS`` order) written by the ``csv`` module."""

    def __init__(self, rows: Iterable[Sequence], *, header: Sequence[str] = HEADER, bom: bool = True) -> None:
        self._rows = iter(rows)
        self._header = header
        self._bom = bom
        super().__init__(self._generate())

    def _generate(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        buffer.write(header_text(self._header, bom=self._bom))
        writer = csv.writer(buffer, lineterminator=LINE_END)
        # Which positions need converting, worked out once: most cells go to the writer untouched.
        kinds = [column.kind for column in COLUMNS] if len(self._header) == len(COLUMNS) else None
        convert = [i for i, kind in enumerate(kinds or ()) if kind in ("datetime", "date", "bool", "text")]
        for row in self._rows:
            if kinds is None:
                cells = [cell_text(value) for value in row]
            else:
                cells = list(row)
                for i in convert:
                    if cells[i] is not None:
                        cells[i] = cell_text(cells[i])
            writer.writerow(cells)
            self.rows += 1
            if buffer.tell() >= CHUNK_CHARS:
                yield buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue().encode("utf-8")

    def close(self) -> None:
        super().close()
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


class CopyChunks(_Chunks):
    """PostgreSQL: ``COPY (queryset) TO STDOUT WITH (FORMAT csv)`` in the given time zone, streamed.

    ``queryset`` must yield CSV-ready text (``rows.usage_history_sql_rows``). The session's
    time zone is set for the statement and put back afterwards; closing the stream early
    cancels the COPY on the server (psycopg does) and leaves the connection usable.
    """

    def __init__(self, queryset, *, time_zone: str, header: Sequence[str] = HEADER, bom: bool = True) -> None:
        self._queryset = queryset
        self._time_zone = time_zone
        self._header = header
        self._bom = bom
        super().__init__(self._generate())

    def _generate(self) -> Iterator[bytes]:
        yield header_text(self._header, bom=self._bom).encode("utf-8")
        connection = connections[self._queryset.db]
        sql, params = self._queryset.query.get_compiler(connection=connection).as_sql()
        connection.ensure_connection()
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor  # psycopg's own: Django's wrapper has no copy()
            cursor.execute("SELECT set_config('TimeZone', %s, false)", [self._time_zone])
            try:
                pending, rows = bytearray(), 0
                with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                    for block in copy:  # exactly one row per block (libpq's PQgetCopyData), ending in LF
                        if block[-1:] != b"\n":  # a memoryview
                            raise RuntimeError("COPY returned a partial row: cannot end it with CRLF.")
                        pending += block[:-1]
                        pending += b"\r\n"
                        rows += 1
                        if len(pending) >= CHUNK_CHARS:
                            yield self._counted(bytes(pending), rows)
                            pending, rows = bytearray(), 0
                if pending:
                    yield self._counted(bytes(pending), rows)
                self.rows = cursor.rowcount  # exact, from COPY's own count
            finally:
                cursor.execute("SELECT set_config('TimeZone', %s, false)", [connection.timezone_name])

    def _counted(self, chunk: bytes, rows: int) -> bytes:
        self.rows += rows
        return chunk


def usage_history_csv(
    subject: User, period: Period, *, bom: bool = True, engine: str = "auto", header: Sequence[str] = HEADER
) -> _Chunks:
    """The subject's usage history as CSV chunks; ``engine`` ``auto`` (COPY on PostgreSQL), ``copy`` or ``orm``."""
    queryset_db = usage_history_sql_rows(subject, period).db
    if engine == "auto":
        engine = "copy" if connections[queryset_db].vendor == "postgresql" else "orm"
    if engine == "copy":
        return CopyChunks(usage_history_sql_rows(subject, period), time_zone=str(period.tz), header=header, bom=bom)
    return CsvChunks(usage_history_rows(subject, period), header=header, bom=bom)


def csv_export_write(job: ExportJob) -> _Chunks:
    """The registry's CSV writer: the usage history as a stream of chunks (see ``usage_history_csv``)."""
    return usage_history_csv(job.subject, job.period, bom=job.bom, header=job.header)
