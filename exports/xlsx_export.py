"""Write usage-history rows as an Excel workbook (openpyxl write-only mode: rows go straight to disk).

Cells are typed: datetimes are Excel date-times in the subject's local time (Excel has no time
zones; the ``time_zone`` column names the zone), numbers are numbers, booleans booleans. Text is
stored as text exactly as the user typed it: a title such as ``=HYPERLINK(…)`` is a string cell
with the ``quotePrefix`` style (what Excel itself sets when you type ``'=1``), so Excel shows
``=1`` and never evaluates it — no apostrophe becomes part of the text. Characters XML cannot hold
(NUL and other C0 controls but tab, CR, LF) are dropped rather than failing the export, and a
CR or CRLF inside a cell becomes LF (Excel's line break in a cell; XML would fold a raw CR anyway).
"""

from __future__ import annotations

import contextlib
import datetime
import tempfile
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from .registry import ExportJob
from .rows import COLUMNS, HEADER, formula_like, usage_history_rows

NUMBER_FORMATS = {
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "date": "yyyy-mm-dd",
    "decimal": "0.00##",
    "int": "0",
}
WIDTHS = {"datetime": 20, "date": 12, "text": 22, "code": 14, "int": 10, "decimal": 12, "bool": 10}


def _excel_value(value):
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # already converted to the subject's zone
    return value


def xlsx_write(rows: Iterable[Sequence], target: BinaryIO, *, sheet_title: str, header: Sequence[str] = HEADER) -> int:
    """Write the header and ``rows`` (``COLUMNS`` order) to ``target``; return the number of data rows.

    On an error the half-written worksheet is closed and its temporary file removed before the
    error propagates (``_sheet_discard``).
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    try:
        count = _sheet_fill(sheet, rows, header=header)
        workbook.save(target)
    except BaseException:
        _sheet_discard(sheet)
        raise
    return count


def xlsx_export_write(job: ExportJob) -> tuple[BinaryIO, int]:
    """The registry's XLSX writer: the workbook in an anonymous temporary file, and its number of rows."""
    out = tempfile.TemporaryFile()
    try:
        rows = xlsx_write(
            usage_history_rows(job.subject, job.period), out, sheet_title="Usage history", header=job.header
        )
    except BaseException:
        out.close()
        raise
    return out, rows


def text_cell(sheet, value: str) -> WriteOnlyCell:
    """A string cell, never a formula; formula-like text gets Excel's own "text" mark (quotePrefix)."""
    # XML turns a raw CR into LF on reading anyway; Excel's line break inside a cell is LF.
    value = ILLEGAL_CHARACTERS_RE.sub("", value).replace("\r\n", "\n").replace("\r", "\n")
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # openpyxl would make "=…" a formula
    if formula_like(value):
        cell.quotePrefix = True
    return cell


def _sheet_fill(sheet, rows: Iterable[Sequence], *, header: Sequence[str]) -> int:
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[_letter(index)].width = WIDTHS[column.kind]
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for text in header:
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    formats = [NUMBER_FORMATS.get(column.kind) for column in COLUMNS]
    count = 0
    for row in rows:
        cells = []
        for value, number_format in zip(row, formats, strict=True):
            if isinstance(value, str):
                cells.append(text_cell(sheet, value))
                continue
            cell = WriteOnlyCell(sheet, value=_excel_value(value))
            if number_format and value is not None:
                cell.number_format = number_format
            cells.append(cell)
        sheet.append(cells)
        count += 1
    return count


def _sheet_discard(sheet) -> None:
    """Close a write-only sheet abandoned mid-write and delete its temporary file.

    openpyxl streams the sheet through a named temporary file that it deletes only at exit, via
    two nested generators: the row writer (``sheet._rows``, inside ``<sheetData>``) and the file
    writer (``sheet._writer.xf``). They are closed innermost first, while the file is still open:
    closing the file first leaves the row writer to write ``</sheetData>`` into a closed file
    when it is garbage-collected ("Exception ignored in ... _write_rows: I/O operation on closed
    file"). After a successful ``sheet.close()`` both are already finished and this is harmless.
    """
    writer = sheet._writer
    if writer is None:  # nothing was appended: no file yet
        return
    # On a full disk, closing writes the closing tags and fails again: the file is discarded anyway.
    try:
        with contextlib.suppress(OSError):
            if sheet._rows is not None:
                sheet._rows.close()
    finally:
        try:
            with contextlib.suppress(OSError):
                writer.close()
        finally:
            with contextlib.suppress(FileNotFoundError, ValueError):  # already removed by a save that failed later
                writer.cleanup()


def _letter(index: int) -> str:
    letters = ""
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
