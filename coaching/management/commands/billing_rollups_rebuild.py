"""Rebuild the billing roll-up (``BillingBucket``) from the subscription history, the payments and the users.

    python manage.py billing_rollups_rebuild           # recompute every bucket, print how many differed
    python manage.py billing_rollups_rebuild --check   # only compare; exit 1 if any bucket differs

The billing service, the payment and user signals and the bulk seeders keep the roll-up current;
this is for after a bulk load that bypassed them (benchmarks) and as the proof that the roll-up is
what the records say. One transaction: stopping it midway leaves the roll-up as it was.
"""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from coaching import billing_rollups


class Command(BaseCommand):
    help = "Recompute the billing roll-up (hourly and daily buckets) from the subscription history and payments."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Only compare; exit 1 if any bucket differs.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, check: bool = False, no_progress: bool = False, **options):
        kinds = ("events", "payments", "refunds", "users")
        with tqdm(total=len(kinds), desc="billing roll-up", unit="reads", disable=no_progress) as bar:
            differed = billing_rollups.rebuild(check=check, progress=lambda kind: bar.update(1))
        if check:
            self.stdout.write(f"{differed} billing buckets differ from the records.")
            if differed:
                raise SystemExit(1)
            return
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the billing roll-up: {differed} buckets differed."))
