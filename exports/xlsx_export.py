"""Write usage-history rows as an Excel workbook (openpyxl write-only mode: rows go straight to disk).

Cells are typed: datetimes are Excel date-times in the subject's local time (Excel has no time
zones; the sheet's header says which zone), numbers are numbers, booleans booleans. Text has
had the same formula neutralisation as the CSV (``rows.neutralise``), so a title such as
``=HYPERLINK(…)`` is stored as text, never as a formula.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from .rows import COLUMNS

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NUMBER_FORMATS = {
    "datetime": "yyyy-mm-dd hh:mm:ss",
    "date": "yyyy-mm-dd",
    "decimal": "0.00##",
    "int": "0",
}
WIDTHS = {"datetime": 20, "date": 12, "text": 22, "int": 10, "decimal": 12, "bool": 10}


def _excel_value(value):
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # already converted to the subject's zone
    return value


def xlsx_write(rows: Iterable[Sequence], target: BinaryIO, *, sheet_title: str, time_zone: str) -> int:
    """Write the header and ``rows`` (``COLUMNS`` order) to ``target``; return the number of data rows.

    On an error the half-written worksheet is closed and its temporary file removed before the
    error propagates (``_sheet_discard``).
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    try:
        count = _sheet_fill(sheet, rows, time_zone=time_zone)
        workbook.save(target)
    except BaseException:
        _sheet_discard(sheet)
        raise
    return count


def _sheet_fill(sheet, rows: Iterable[Sequence], *, time_zone: str) -> int:
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[_letter(index)].width = WIDTHS[column.kind]
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for column in COLUMNS:
        text = f"{column.name} ({time_zone})" if column.kind == "datetime" else column.name
        cell = WriteOnlyCell(sheet, value=text)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    formats = [NUMBER_FORMATS.get(column.kind) for column in COLUMNS]
    count = 0
    for row in rows:
        cells = []
        for value, number_format in zip(row, formats, strict=True):
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
