"""Write usage-history rows as CSV, streamed in chunks so memory stays flat however many rows.

(Named ``csv_export``, not ``csv``: a module called ``csv`` would shadow the standard library's.)

The file: UTF-8 with a byte-order mark by default (so Excel shows 王小明 rather than mojibake),
one header row, ``\\r\\n`` line ends (RFC 4180), text quoted only when it must be, numbers
written bare (``-2.00`` stays a number), datetimes ISO 8601 with their UTC offset, booleans
``true``/``false``, an empty cell for a missing value.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Iterator, Sequence

from .rows import COLUMNS

BOM = "\ufeff"
# Bytes gathered before a chunk is handed to the server: big enough to amortise the per-chunk
# cost, small enough that the first bytes reach the browser at once.
CHUNK_CHARS = 64 * 1024
CONTENT_TYPE = "text/csv; charset=utf-8"


def cell_text(value) -> object:
    """A typed cell as CSV text; numbers and strings pass through (the csv module writes them)."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


class CsvChunks:
    """An iterator of UTF-8 byte chunks of a CSV file; counts the data rows and bytes it produced."""

    def __init__(self, rows: Iterable[Sequence], *, header: Sequence[str], bom: bool = True) -> None:
        self._rows = iter(rows)
        self._header = header
        self._bom = bom
        self.rows = 0
        self.bytes = 0
        self._chunks = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.bytes += len(chunk)
        return chunk

    def _generate(self) -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if self._bom:
            buffer.write(BOM)
        writer.writerow(self._header)
        # Which positions need converting, worked out once: most cells go to the writer untouched.
        kinds = [column.kind for column in COLUMNS] if len(self._header) == len(COLUMNS) else None
        convert = [i for i, kind in enumerate(kinds or ()) if kind in ("datetime", "date", "bool")]
        for row in self._rows:
            if kinds is None:
                cells = [cell_text(value) for value in row]
            else:
                cells = list(row)
                for i in convert:
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
        self._chunks.close()
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()
