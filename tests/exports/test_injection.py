"""Hostile and awkward text through every writer: the ORM CSV writer, the PostgreSQL COPY engine, the XLSX.

Each value is both a session's title and its client's name. The files are parsed back: the CSV
with Python's csv module (RFC 4180, CRLF line ends), the XLSX with openpyxl.
"""

import csv
import io
import zoneinfo

import openpyxl
import pytest
from django.conf import settings

from analytics.periods import parse_period
from exports.csv_export import usage_history_csv
from exports.rows import HEADER
from exports.xlsx_export import xlsx_write
from tests.exports.conftest import APRIL
from tests.factories import ClientFactory, CoachingSessionFactory, UsageLogFactory

pytestmark = pytest.mark.django_db
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

# value -> what the CSV cell holds (the XLSX holds the value itself, as text, NUL removed, CR as LF).
FORMULA_LIKE = {
    "=1+1": "'=1+1",  # OWASP's leads
    "+886 912": "'+886 912",
    "-5": "'-5",
    "@SUM(A1)": "'@SUM(A1)",
    "\t=1": "'\t=1",
    "\r=1": "'\r=1",  # the report: a client name holding a carriage return
    "\n=1": "'\n=1",
    "＝1+1": "'＝1+1",  # fullwidth forms
    "＋1": "'＋1",
    "－1": "'－1",
    "＠SUM(A1)": "'＠SUM(A1)",
    " =1": "' =1",  # whitespace a spreadsheet trims first
    "   +1": "'   +1",
    "\u3000=1": "'\u3000=1",
}
PLAIN = {
    "a=b": "a=b",
    "王小明": "王小明",
    "line\rbreak": "line\rbreak",  # CR, LF and CRLF inside a cell: quoted, kept
    "line\nbreak": "line\nbreak",
    "line\r\nbreak": "line\r\nbreak",
    'quote " comma,': 'quote " comma,',
    "  spaced  ": "  spaced  ",
}
NUL = {"\x00=1": "'=1", "a\x00b": "ab"}  # PostgreSQL text cannot hold NUL: embedded database only


def _history(coach, frozen, values):
    for value in values:
        client = ClientFactory(coach=coach, name=value)
        session = CoachingSessionFactory(coach=coach, client=client, title=value)
        UsageLogFactory(user=coach, session=session, client=client, created_at=frozen)
    return parse_period(APRIL, tz=coach.tzinfo)


def _parse(body: bytes) -> list[dict]:
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), strict=True)
    rows = list(reader)
    assert rows[0] == list(HEADER)
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def _records(body: bytes) -> list[bytes]:
    """The file split at line ends outside quotes: each must end in CRLF."""
    records, start, quoted = [], 0, False
    for i, byte in enumerate(body):
        if byte == ord('"'):
            quoted = not quoted
        elif byte == ord("\n") and not quoted:
            records.append(body[start : i + 1])
            start = i + 1
    assert body[start:] == b"", "the file ends with a line end"
    return records


def _check_csv(body: bytes, expected: dict[str, str]) -> None:
    rows = _parse(body)
    assert sorted(row["session_title"] for row in rows) == sorted(expected.values())
    assert sorted(row["client"] for row in rows) == sorted(expected.values())
    records = _records(body)
    assert len(records) == 1 + len(expected)
    assert all(record.endswith(b"\r\n") for record in records)
    for row in rows:  # no cell a spreadsheet would run
        for value in (row["session_title"], row["client"]):
            assert not value.lstrip(" \u3000").startswith(tuple("=+-@＝＋－＠\t\r\n"))


@pytest.mark.parametrize(
    "engine", ["orm", pytest.param("copy", marks=pytest.mark.skipif(not ON_POSTGRESQL, reason="COPY needs PostgreSQL"))]
)
def test_every_formula_lead_and_line_break_through_the_csv_engines(coach, frozen, engine):
    period = _history(coach, frozen, {**FORMULA_LIKE, **PLAIN})
    body = b"".join(usage_history_csv(coach, period, engine=engine, header=HEADER))

    _check_csv(body, {**FORMULA_LIKE, **PLAIN})
    # Quoted exactly where RFC 4180 needs it: the CR/LF cells; a lone formula lead is not quoted.
    assert b',"line\rbreak",' in body and b',"line\r\nbreak",' in body and b",'=1+1," in body


@pytest.mark.skipif(ON_POSTGRESQL, reason="PostgreSQL text cannot hold NUL")
def test_nul_is_removed_before_the_formula_rule(coach, frozen):
    period = _history(coach, frozen, NUL)
    body = b"".join(usage_history_csv(coach, period, engine="orm", header=HEADER))

    _check_csv(body, NUL)
    assert b"\x00" not in body


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the COPY engine needs PostgreSQL")
def test_copy_and_orm_engines_write_the_same_bytes_for_hostile_text(coach, frozen):
    period = _history(coach, frozen, {**FORMULA_LIKE, **PLAIN})
    new_york = parse_period(APRIL, tz=zoneinfo.ZoneInfo("America/New_York"))
    for p in (period, new_york):
        for bom in (True, False):
            via_copy = b"".join(usage_history_csv(coach, p, bom=bom, engine="copy", header=HEADER))
            via_orm = b"".join(usage_history_csv(coach, p, bom=bom, engine="orm", header=HEADER))
            assert via_copy == via_orm


def test_xlsx_keeps_formula_like_text_as_text_marked_quote_prefix(coach, frozen):
    from exports.rows import usage_history_rows

    values = {**FORMULA_LIKE, **PLAIN} | ({} if ON_POSTGRESQL else NUL)
    period = _history(coach, frozen, values)
    out = io.BytesIO()
    assert xlsx_write(usage_history_rows(coach, period), out, sheet_title="t", header=HEADER) == len(values)
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    rows = list(sheet.iter_rows(min_row=2))
    title = HEADER.index("session_title")

    shown = {row[title].value: row[title] for row in rows}
    for value in values:
        stored = value.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
        cell = shown[stored]  # the text itself: no apostrophe added
        assert cell.data_type == "s"
        assert cell.quotePrefix is (value in FORMULA_LIKE or value == "\x00=1")
    assert all(cell.data_type != "f" for row in rows for cell in row)
