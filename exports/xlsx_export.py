"""Write usage-history rows as an Excel workbook (openpyxl write-only mode: rows go straight to disk).

Cells are typed: datetimes are Excel date-times in the subject's local time (Excel has no time
zones; the sheet's header says which zone), numbers are numbers, booleans booleans. Text has
had the same formula neutralisation as the CSV (``rows.neutralise``), so a title such as
``=HYPERLINK(…)`` is stored as text, never as a formula.
"""

from __future__ import annotations

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

    On an error the worksheet's own temporary file is removed before the error propagates.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
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
    try:
        for row in rows:
            cells = []
            for value, number_format in zip(row, formats, strict=True):
                cell = WriteOnlyCell(sheet, value=_excel_value(value))
                if number_format and value is not None:
                    cell.number_format = number_format
                cells.append(cell)
            sheet.append(cells)
            count += 1
        workbook.save(target)
    except BaseException:
        # openpyxl streams the sheet through a named temporary file it would only delete at exit.
        writer = getattr(sheet, "_writer", None)
        if writer is not None:
            writer.xf.close()
            try:
                writer.cleanup()
            except (FileNotFoundError, ValueError):
                pass
        raise
    return count


def _letter(index: int) -> str:
    letters = ""
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
