"""Time-zone helpers every layer uses: the domain (counters, the demo) and analytics (periods, quota)."""

from __future__ import annotations

import datetime
import zoneinfo


def local_midnight(day: datetime.date, tz: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The instant ``day`` begins in time zone ``tz`` (an aware datetime, 00:00 local)."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
