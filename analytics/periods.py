"""Reporting periods: ``[start, end)`` in the viewing user's time zone.

Every surface (page, API, PDF, task) parses its period here, so a "month" means
the same thing everywhere and bucket boundaries fall at local midnight.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import zoneinfo
from collections.abc import Iterator, Mapping

from django.utils import timezone

from coaching.timezones import local_midnight

PERIOD_CHOICES = ("7d", "30d", "90d", "month", "year", "all", "3m", "12m")
# The product's first record could not predate this; "all" starts here.
EPOCH = datetime.date(2020, 1, 1)
MAX_RANGE_DAYS = 366 * 20
# Dates a query may name: nothing was recorded before 2000, and far-off dates would overflow
# the calendar arithmetic (a previous period before year 1, a day after 9999-12-31).
FIRST_DATE = datetime.date(2000, 1, 1)
LAST_DATE = datetime.date(2100, 12, 31)


class PeriodError(ValueError):
    """A period the caller asked for that cannot be honoured; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class Period:
    """A half-open interval ``[start, end)`` of aware datetimes, with the zone it was cut in.

    ``first_day`` and ``last_day`` are the local dates it covers (``last_day`` inclusive).
    """

    start: datetime.datetime
    end: datetime.datetime
    tz: zoneinfo.ZoneInfo
    key: str  # "30d", "month", …, or "custom"

    @property
    def first_day(self) -> datetime.date:
        return self.start.astimezone(self.tz).date()

    @property
    def last_day(self) -> datetime.date:
        return (self.end.astimezone(self.tz) - datetime.timedelta(microseconds=1)).date()

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def granularity(self) -> str:
        """``day`` for periods up to 92 days, else ``month``: what a chart of it should bucket by."""
        return "day" if self.days <= 92 else "month"

    def previous(self) -> Period:
        """The period of equal length (in local days) that ends where this one starts."""
        first = self.first_day - datetime.timedelta(days=self.days)
        return Period(start=local_midnight(first, self.tz), end=self.start, tz=self.tz, key=f"previous-{self.key}")

    def buckets(self, granularity: str | None = None) -> list[Bucket]:
        return list(_iter_buckets(self, granularity or self.granularity))

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "timezone": str(self.tz),
            "granularity": self.granularity,
        }


@dataclasses.dataclass(frozen=True)
class Bucket:
    """One chart bucket: local ``label`` (``2026-04-01`` or ``2026-04``) and its ``[start, end)``."""

    label: str
    start: datetime.datetime
    end: datetime.datetime


def _next_month(day: datetime.date) -> datetime.date:
    return (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def _iter_buckets(period: Period, granularity: str) -> Iterator[Bucket]:
    if granularity not in ("day", "month"):
        raise PeriodError("granularity must be 'day' or 'month'.")
    day = period.first_day if granularity == "day" else period.first_day.replace(day=1)
    while local_midnight(day, period.tz) < period.end:
        following = day + datetime.timedelta(days=1) if granularity == "day" else _next_month(day)
        start = max(local_midnight(day, period.tz), period.start)
        end = min(local_midnight(following, period.tz), period.end)
        label = day.isoformat() if granularity == "day" else day.strftime("%Y-%m")
        yield Bucket(label=label, start=start, end=end)
        day = following


def period_for(key: str, *, tz: zoneinfo.ZoneInfo, now: datetime.datetime | None = None) -> Period:
    """A named period ending today (inclusive), in ``tz``."""
    now = now or timezone.now()
    today = now.astimezone(tz).date()
    tomorrow = today + datetime.timedelta(days=1)
    if key in ("7d", "30d", "90d"):
        first = tomorrow - datetime.timedelta(days=int(key[:-1]))
    elif key == "3m":
        first = _months_back(today.replace(day=1), 2)
    elif key == "12m":
        first = _months_back(today.replace(day=1), 11)
    elif key == "month":
        first = today.replace(day=1)
    elif key == "year":
        first = today.replace(month=1, day=1)
    elif key == "all":
        first = EPOCH
    else:
        raise PeriodError(f"Unknown period {key!r}: use one of {', '.join(PERIOD_CHOICES)}, or from/to dates.")
    return Period(start=local_midnight(first, tz), end=local_midnight(tomorrow, tz), tz=tz, key=key)


def months_ending_today(months: int, *, tz: zoneinfo.ZoneInfo, now: datetime.datetime, key: str) -> Period:
    """The ``months`` months ending today (inclusive), e.g. 12 months on 3 Dec 2026: 4 Dec 2025 - 3 Dec 2026.

    Unlike ``period_for("12m")`` (whole calendar months back from this one, which usage keeps for
    its old clients), a trailing window: the same length whatever today's date.
    """
    today = now.astimezone(tz).date()
    tomorrow = today + datetime.timedelta(days=1)
    back = _months_back(tomorrow.replace(day=1), months)
    first = back.replace(day=min(tomorrow.day, calendar.monthrange(back.year, back.month)[1]))
    return Period(start=local_midnight(first, tz), end=local_midnight(tomorrow, tz), tz=tz, key=key)


def _months_back(first_of_month: datetime.date, months: int) -> datetime.date:
    year, month = first_of_month.year, first_of_month.month - months
    while month < 1:
        year, month = year - 1, month + 12
    return datetime.date(year, month, 1)


def _parse_date(name: str, value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{name!r} must be a date as YYYY-MM-DD, not {value!r}.") from None


def range_period(first: datetime.date, last: datetime.date, *, tz: zoneinfo.ZoneInfo) -> Period:
    """The local days ``first`` to ``last``, both inclusive."""
    for name, day in (("from", first), ("to", last)):
        if not FIRST_DATE <= day <= LAST_DATE:
            raise PeriodError(f"{name!r} must be between {FIRST_DATE} and {LAST_DATE}, not {day}.")
    if last < first:
        raise PeriodError(f"'to' ({last}) is before 'from' ({first}): the range must end on or after its start.")
    if (last - first).days > MAX_RANGE_DAYS:
        raise PeriodError("The range is longer than 20 years: choose a shorter one.")
    return Period(
        start=local_midnight(first, tz),
        end=local_midnight(last + datetime.timedelta(days=1), tz),
        tz=tz,
        key="custom",
    )


def parse_period(
    params: Mapping[str, str],
    *,
    tz: zoneinfo.ZoneInfo,
    now: datetime.datetime | None = None,
    default: str = "30d",
) -> Period:
    """Read ``period`` or ``from``/``to`` from query parameters. Raises ``PeriodError`` with a message."""
    first, last, key = params.get("from"), params.get("to"), params.get("period")
    if first or last:
        if key:
            raise PeriodError("Give either 'period' or 'from'/'to', not both.")
        now = now or timezone.now()
        today = now.astimezone(tz).date()
        first_day = _parse_date("from", first) if first else EPOCH
        last_day = _parse_date("to", last) if last else today
        return range_period(first_day, last_day, tz=tz)
    return period_for(key or default, tz=tz, now=now)


def parse_timezone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"Unknown time zone {name!r}: use an IANA name such as Asia/Taipei.") from None
