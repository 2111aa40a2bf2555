"""``manage.py exports_sweep``: mark exports abandoned mid-stream failed (also run by Celery beat)."""

import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from exports.services import stale_exports_fail


class Command(BaseCommand):
    help = "Mark exports still running after EXPORT_STALE_MINUTES (their server process died) as failed."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-minutes",
            type=int,
            default=None,
            help=f"How long a running export may last (default EXPORT_STALE_MINUTES, {settings.EXPORT_STALE_MINUTES}).",
        )

    def handle(self, *args, older_than_minutes: int | None = None, **options):
        if older_than_minutes is not None and older_than_minutes < 0:
            raise CommandError(f"--older-than-minutes must be 0 or more, not {older_than_minutes}.")
        older_than = None if older_than_minutes is None else datetime.timedelta(minutes=older_than_minutes)
        count = stale_exports_fail(older_than=older_than)
        self.stdout.write(f"Marked {count} abandoned export{'' if count == 1 else 's'} failed.")
