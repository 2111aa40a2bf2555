"""Recompute the customer columns of the subscription history from its facts.

    python manage.py billing_history_rebuild           # rewrite what differs, print how many rows
    python manage.py billing_history_rebuild --check   # only count; exit 1 if any row differs

The billing service keeps these columns current on every write; this is for after a bulk load
(benchmarks) and as the proof that what is stored is what the facts say. When rows were
rewritten, the billing roll-up is rebuilt after them (``billing_rollups_rebuild``).
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from coaching import billing_rollups
from coaching.billing_services import customer_history_rebuild


class Command(BaseCommand):
    help = "Recompute the subscription history's derived customer columns (MRR movements, paying users)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Only count rows that differ; exit 1 if any.")

    def handle(self, *args, check: bool = False, **options):
        with transaction.atomic():
            differed = customer_history_rebuild(check=check)
        if check:
            self.stdout.write(f"{differed} events differ from their facts.")
            if differed:
                raise SystemExit(1)
            return
        self.stdout.write(self.style.SUCCESS(f"Rebuilt: {differed} events rewritten."))
        if differed:
            # The roll-up sums the rewritten columns: recompute it from the history.
            buckets = billing_rollups.rebuild()
            self.stdout.write(self.style.SUCCESS(f"Billing roll-up rebuilt: {buckets} buckets differed."))
