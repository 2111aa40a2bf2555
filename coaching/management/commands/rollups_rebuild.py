from django.core.management.base import BaseCommand
from tqdm import tqdm

from coaching import rollups_build

from ._rollup_range import add_range_arguments, parse_range


class Command(BaseCommand):
    help = (
        "Recompute the usage roll-ups of a range of days from the raw rows. Chunk by chunk, each in one "
        "transaction: safe to stop and run again (the result is the same as one uninterrupted run)."
    )

    def add_arguments(self, parser):
        add_range_arguments(parser)
        parser.add_argument("--chunk-days", type=int, default=7, help="Days per transaction (default 7).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, **opts):
        days = parse_range(opts)
        if days is None:
            self.stdout.write("No usage records: nothing to roll up.")
            return
        first, last = days
        total = (last - first).days + 1
        with tqdm(total=total, desc="roll-ups", unit="day", disable=opts["no_progress"], mininterval=1) as bar:
            written = rollups_build.rebuild(first, last, chunk_days=max(1, opts["chunk_days"]), progress=bar.update)
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {total} days ({first} to {last}): {written} buckets."))
