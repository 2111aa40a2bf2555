"""The ``--from``/``--to`` options the ``rollups_*`` commands share."""

import datetime

from django.core.management.base import CommandError

from coaching import rollups_build


def add_range_arguments(parser) -> None:
    parser.add_argument("--from", dest="first", help="First day YYYY-MM-DD (default: the first day with a record).")
    parser.add_argument("--to", dest="last", help="Last day YYYY-MM-DD, inclusive (default: the last with a record).")


def parse_range(opts) -> tuple[datetime.date, datetime.date] | None:
    """The days asked for, or every day with a record; None when there is none."""
    span = None
    if not (opts["first"] and opts["last"]):
        span = rollups_build.record_span()
        if span is None and not (opts["first"] or opts["last"]):
            return None
    days = []
    for name, value, fallback in (("from", opts["first"], span and span[0]), ("to", opts["last"], span and span[1])):
        if value:
            try:
                days.append(datetime.date.fromisoformat(value))
            except ValueError:
                raise CommandError(f"--{name} must be a date as YYYY-MM-DD, not {value!r}.") from None
        else:
            days.append(fallback or days[0])
    if days[1] < days[0]:
        raise CommandError(f"--to ({days[1]}) is before --from ({days[0]}).")
    return days[0], days[1]
