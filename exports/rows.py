"""What goes in a usage-history file: the columns, the rows, and the spreadsheet-safety rule.

Pure reads: nothing here writes a file or knows about HTTP. ``csv_export``, ``xlsx_export``
and ``pdf_export`` decide how the rows are written; ``services`` decides who may have them.

The usage history is the subject's usage ledger (``UsageLog``) rows created in the period,
oldest first, joined with the session's title, status and date and the client's name.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import Case, CharField, Count, F, Func, Min, Q, Sum, Value, When
from django.db.models.functions import Concat, NullIf, TruncDay, TruncMonth
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from analytics.periods import Period
from analytics.usage import usage_series
from coaching.models import CoachingSession, UsageLog, User

# OWASP "CSV Injection": a text cell a spreadsheet may run as a formula. The leads are OWASP's
# (= + - @, tab, carriage return) plus line feed, their fullwidth forms (an East Asian input method
# types ＝ for =, and some spreadsheets fold it back) and any of = + - @ behind leading spaces
# (spreadsheets trim them before they parse). One pattern, read by Python's ``re`` for the ORM writer
# and the XLSX, and by PostgreSQL's ``~`` for the COPY engine, so both engines agree.
FORMULA_LEADS = "=+@＝＋－＠-"  # "-" last: literal inside a bracket expression
FORMULA_PATTERN = f"^[\t\r\n]|^[ \u3000]*[{FORMULA_LEADS}]"
_FORMULA = re.compile(FORMULA_PATTERN)

# Rows fetched from the database per round trip while streaming (a server-side cursor on PostgreSQL).
CHUNK_SIZE = 5000


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the usage history: its key (the ``?headers=keys`` header), its label and its cells."""

    name: str
    kind: str  # "datetime", "date", "text" (typed by a user), "code" (one of ours), "int", "decimal", "bool"
    label: str  # translated when the header is written (the reader's language)
    description: str


COLUMNS: tuple[Column, ...] = (
    Column(
        "created_at",
        "datetime",
        _("Recorded at"),
        "When the usage was recorded: local date and time (YYYY-MM-DD HH:MM:SS) in the time_zone column's zone.",
    ),
    Column("time_zone", "code", _("Time zone"), "The IANA time zone of created_at (the subject's), e.g. Asia/Taipei."),
    Column(
        "kind",
        "code",
        _("Kind"),
        "original, retry_failed (free retry), retry_success (paid re-run) or adjustment.",
    ),
    Column("session_title", "text", _("Session"), "The coaching session's title."),
    Column("client", "text", _("Client"), "The client (coachee) the session was with."),
    Column("session_status", "code", _("Session status"), "The session's transcription status now."),
    Column("session_date", "date", _("Session date"), "The day the session took place."),
    Column("provider", "text", _("Provider"), "Speech-to-text provider (google, assemblyai)."),
    Column("seconds", "int", _("Seconds"), "Audio seconds transcribed (negative for a correcting adjustment)."),
    Column("minutes", "decimal", _("Minutes"), "seconds / 60, two places, rounded half up."),
    Column(
        "counts_toward_quota",
        "bool",
        _("Counts toward quota"),
        "true for original and retry_success rows: what the plan limit counts.",
    ),
    Column("billable", "bool", _("Billable"), "Whether the row was billable."),
    Column("provider_cost_usd", "decimal", _("Provider cost (USD)"), "What the provider charged, in US dollars."),
    Column("plan", "text", _("Plan"), "The subject's plan when the usage happened."),
    Column("usage_log_id", "int", _("Ledger entry"), "The ledger row's id."),
)
HEADER: tuple[str, ...] = tuple(column.name for column in COLUMNS)
HEADER_STYLES = ("labels", "keys")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # local wall time; the zone is the time_zone column


def header(style: str = "keys", *, language: str | None = None) -> tuple[str, ...]:
    """The header row: stable English keys (``keys``), or the column labels in ``language``."""
    if style == "keys":
        return HEADER
    with translation.override(language or translation.get_language()):
        return tuple(str(column.label) for column in COLUMNS)


# The ledger fields behind COLUMNS, in the same order (created_at converted, time_zone and
# counts_toward_quota derived).
_FIELDS = (
    "created_at",
    "kind",
    "session__title",
    "client__name",
    "session__status",
    "session__session_date",
    "provider",
    "seconds",
    "minutes",
    "billable",
    "provider_cost_usd",
    "plan_code",
    "id",
)
_QUOTA_KINDS = frozenset(str(kind) for kind in UsageLog.QUOTA_KINDS)


def formula_like(value: str) -> bool:
    """True for text a spreadsheet could run as a formula (``FORMULA_PATTERN``)."""
    return _FORMULA.match(value) is not None


def text_clean(value: str) -> str:
    """Text as a file can hold it: NUL removed (PostgreSQL never stores one; the csv module's reader
    rejects a file holding one, and XML cannot hold it)."""
    return value.replace("\x00", "") if "\x00" in value else value


def neutralise(value: str) -> str:
    """A CSV text cell made spreadsheet-safe: NUL removed, a single quote before a formula-like lead.

    Only text is touched; numbers are never passed here, so ``-12.5`` stays a number. (The XLSX
    keeps the text as it is and marks the cell as text instead: ``xlsx_export``.)
    """
    value = text_clean(value)
    return "'" + value if value and formula_like(value) else value


def usage_history_queryset(subject: User, period: Period):
    """The subject's ledger rows with ``period.start <= created_at < period.end``, oldest first."""
    return UsageLog.objects.filter(user=subject, created_at__gte=period.start, created_at__lt=period.end).order_by(
        "created_at", "id"
    )


def history_first_day(subject: User, tz: zoneinfo.ZoneInfo) -> datetime.date | None:
    """The local day of the subject's first record: their first ledger row or first session (by date held).

    None when they have neither. Period ``all`` starts here rather than at a fixed early date.
    """
    first_log = UsageLog.objects.filter(user=subject).aggregate(first=Min("created_at"))["first"]
    first_session = CoachingSession.objects.alive().filter(coach=subject).aggregate(first=Min("session_date"))["first"]
    days = [day for day in (first_log and first_log.astimezone(tz).date(), first_session) if day]
    return min(days, default=None)


def usage_history_count(subject: User, period: Period) -> int:
    return usage_history_queryset(subject, period).count()


def usage_history_rows(subject: User, period: Period, *, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple]:
    """Typed rows in ``COLUMNS`` order, streamed from the database.

    ``created_at`` is an aware datetime in the period's time zone; numbers are ``int``/``Decimal``;
    ``None`` where the session or client no longer exists. Text is as the user typed it, NUL
    removed: each writer makes it safe its own way (CSV ``neutralise``, XLSX a text cell, the PDF
    template's escaping).
    """
    tz: zoneinfo.ZoneInfo = period.tz
    zone = str(tz)
    rows = usage_history_queryset(subject, period).values_list(*_FIELDS).iterator(chunk_size=chunk_size)
    for created, kind, title, client, status, day, provider, seconds, minutes, billable, cost, plan, pk in rows:
        yield (
            created.astimezone(tz),
            zone,
            kind,
            text_clean(title) if title else title,
            text_clean(client) if client else client,
            status,
            day,
            provider,
            seconds,
            minutes,
            kind in _QUOTA_KINDS,
            billable,
            cost,
            plan,
            pk,
        )


class _ToChar(Func):
    """PostgreSQL's ``to_char(value, format)``; the format is a fixed literal, never user input."""

    function = "to_char"
    output_field = CharField()

    def __init__(self, expression, fmt: str) -> None:
        super().__init__(expression, Value(fmt))


def _sql_text(field: str):
    """A text column as the CSV shows it: neutralised (``FORMULA_PATTERN``, as ``neutralise``), empty as NULL.

    PostgreSQL text never holds NUL, so there is nothing to remove.
    """
    safe = Case(
        When(**{f"{field}__regex": FORMULA_PATTERN}, then=Concat(Value("'"), F(field), output_field=CharField())),
        default=F(field),
        output_field=CharField(),
    )
    return NullIf(safe, Value(""))


def _sql_bool(condition: Q):
    return Case(When(condition, then=Value("true")), default=Value("false"), output_field=CharField())


def usage_history_sql_rows(subject: User, period: Period):
    """PostgreSQL only: the same rows as ``usage_history_rows`` with every cell already CSV text.

    For ``COPY … TO STDOUT``: the database formats what ``csv_export.CsvChunks`` formats in
    Python, byte for byte. ``created_at`` is ``to_char`` in the *session's* time zone, so the
    caller sets the session to ``period.tz`` for the statement (``csv_export.CopyChunks``).
    """
    return usage_history_queryset(subject, period).values_list(
        _ToChar(F("created_at"), "YYYY-MM-DD HH24:MI:SS"),
        Value(str(period.tz), output_field=CharField()),
        "kind",
        _sql_text("session__title"),
        _sql_text("client__name"),
        "session__status",
        _ToChar(F("session__session_date"), "YYYY-MM-DD"),
        _sql_text("provider"),
        "seconds",
        "minutes",
        _sql_bool(Q(kind__in=UsageLog.QUOTA_KINDS)),
        _sql_bool(Q(billable=True)),
        "provider_cost_usd",
        _sql_text("plan_code"),
        "id",
    )


@dataclasses.dataclass(frozen=True)
class AggregateRow:
    """Ledger rows summed over one local day or month (the PDF's table past its row budget)."""

    label: str
    entries: int
    quota_minutes: Decimal
    all_minutes: Decimal
    provider_cost_usd: Decimal
    failed_retries: int


def usage_history_aggregates(subject: User, period: Period, *, granularity: str) -> list[AggregateRow]:
    """Ledger rows per local ``day`` or ``month`` of the period, only buckets with rows, oldest first.

    ``quota_minutes`` is ``analytics.usage.usage_series``'s minutes for the bucket (the plan's
    rule, and the report's chart); ``all_minutes`` sums every kind (adjustments included);
    ``failed_retries`` counts retry_failed rows.
    """
    trunc = TruncDay if granularity == "day" else TruncMonth
    rows = (
        usage_history_queryset(subject, period)
        .order_by()
        .annotate(bucket=trunc("created_at", tzinfo=period.tz))
        .values("bucket")
        .annotate(
            entries=Count("id"),
            all_minutes=Sum("minutes", default=Decimal("0")),
            cost=Sum("provider_cost_usd", default=Decimal("0")),
            failed_retries=Count("id", filter=Q(kind=UsageLog.Kind.RETRY_FAILED)),
        )
        .order_by("bucket")
    )
    quota = {
        bucket["label"]: bucket["minutes"]
        for bucket in usage_series(User.objects.filter(pk=subject.pk), period, granularity=granularity)
    }
    fmt = "%Y-%m-%d" if granularity == "day" else "%Y-%m"
    lines = []
    for row in rows:
        label = _bucket_label(row["bucket"], period.tz, fmt)
        lines.append(
            AggregateRow(
                label=label,
                entries=row["entries"],
                quota_minutes=Decimal(str(quota.get(label, 0))).quantize(Decimal("0.01")),
                all_minutes=Decimal(row["all_minutes"]).quantize(Decimal("0.01")),
                provider_cost_usd=Decimal(row["cost"]).quantize(Decimal("0.0001")),
                failed_retries=row["failed_retries"],
            )
        )
    return lines


def _bucket_label(bucket: datetime.datetime | datetime.date, tz: zoneinfo.ZoneInfo, fmt: str) -> str:
    if isinstance(bucket, datetime.datetime):
        bucket = bucket.astimezone(tz) if bucket.tzinfo else bucket
    return bucket.strftime(fmt)
